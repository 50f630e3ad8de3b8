//! Changefeed pages (Go's `GET /v2/[<gun>/]_trust/changefeed`), built once and kept: clients
//! that follow the feed ask for the same few pages (from the start, the newest, the one after
//! the last ID they saw) again and again.
//!
//! 1. A forward page that came back full (as many rows as asked for, after `change_id`) never
//!    changes: changefeed rows are never updated or removed, and their IDs are given in commit
//!    order (`storage`'s `CHANGEFEED_LOCK`), so no later commit falls inside it — on a lagging
//!    replica too, whose rows are a prefix of the primary's. It is served as kept. —
//!    `service::tests::changefeed_pages_full_ones_are_kept_and_the_tail_follows_writes`.
//! 2. Any other page (the tail, newest first) is kept with the changefeed position it reflects
//!    (`Coherence::position`: every commit made before the request is at or before it, under
//!    the read lease without a round trip) and served again only at that same position. On a
//!    read-only instance, whose replica may be behind the check that fixed the position, a page
//!    is kept only if it reaches the position.
//!    — the same test, and `multi_instance::changefeed_pages_follow_writes_on_other_instances`.
//! 3. At most [`PAGE_BYTES`] of pages are kept, the least recently used dropped first.

use std::sync::Arc;

use bytes::Bytes;
use notary_common::sync::lock;

use super::{ChangeList, RepoService, ServiceError, MAX_CHANGEFEED_RECORDS};
use crate::gun::Gun;

/// Bytes of changefeed pages kept (invariant 3).
pub const PAGE_BYTES: usize = 8 << 20;

/// A changefeed page as served: Go's JSON, built once.
#[derive(Debug)]
pub struct ChangePage {
    /// Rows in the page.
    pub count: usize,
    /// The page's JSON (`{"count": …, "records": [...]}`).
    pub json: Bytes,
}

/// Which page: (GUN or all, `change_id`, `records`).
type PageKey = (Option<Gun>, i64, i64);

/// A kept page: immutable (invariant 1), or valid at a changefeed position (invariant 2).
struct Kept {
    page: Arc<ChangePage>,
    at: Option<i64>,
}

/// The kept pages (see the module).
pub(super) struct Pages {
    lru: std::sync::Mutex<(lru::LruCache<PageKey, Kept>, usize)>,
}

impl Pages {
    pub(super) fn new() -> Self {
        Pages {
            lru: std::sync::Mutex::new((lru::LruCache::unbounded(), 0)),
        }
    }

    fn get(&self, key: &PageKey, position: Option<i64>) -> Option<Arc<ChangePage>> {
        let mut g = lock(&self.lru);
        let kept = g.0.get(key)?;
        (kept.at.is_none() || kept.at == position).then(|| kept.page.clone())
    }

    fn keep(&self, key: PageKey, page: Arc<ChangePage>, at: Option<i64>) {
        let mut g = lock(&self.lru);
        let (lru, bytes) = &mut *g;
        *bytes += page.json.len();
        if let Some(old) = lru.put(key, Kept { page, at }) {
            *bytes -= old.page.json.len();
        }
        while *bytes > PAGE_BYTES {
            match lru.pop_lru() {
                Some((_, gone)) => *bytes -= gone.page.json.len(),
                None => break,
            }
        }
    }
}

impl RepoService {
    /// A changefeed page: see `SqlStore::changes`; `records` 0 means 100, and a page holds
    /// at most [`MAX_CHANGEFEED_RECORDS`] (Go has no bound; clients page on by the last ID).
    pub async fn changes(
        &self,
        gun: Option<&Gun>,
        change_id: i32,
        records: i32,
    ) -> Result<Arc<ChangePage>, ServiceError> {
        let records = if records == 0 {
            100
        } else {
            (records as i64).clamp(-MAX_CHANGEFEED_RECORDS, MAX_CHANGEFEED_RECORDS)
        };
        let change_id = change_id as i64;
        let key: PageKey = (gun.cloned(), change_id, records);
        let forward = change_id >= 0 && records > 0;
        if forward {
            if let Some(page) = self.pages.get(&key, None) {
                return Ok(page);
            }
        }
        let position = self.coherence.position().await?;
        if let Some(page) = self.pages.get(&key, position) {
            return Ok(page);
        }
        let rows = self.store.changes(gun, change_id, records).await?;
        let newest = rows.last().and_then(|r| r.id.parse::<i64>().ok());
        let full = forward && rows.len() as i64 == records;
        let list = ChangeList {
            count: rows.len(),
            records: rows,
        };
        let page = Arc::new(ChangePage {
            count: list.count,
            json: serde_json::to_vec(&list)
                .map_err(ServiceError::internal)?
                .into(),
        });
        if full {
            self.pages.keep(key, page.clone(), None);
        } else if let Some(p) = position {
            // On a writable database the page was read after every commit up to the position.
            // A read-only instance's replica may be behind its check: the page is kept only if
            // it reaches the position (invariant 2) — its newest row, or for an empty forward
            // page its start — which a page of one repository cannot show.
            let reaches = match newest {
                Some(n) => n >= p,
                None => forward && change_id >= p,
            };
            if !self.read_only || (gun.is_none() && reaches) {
                self.pages.keep(key, page.clone(), Some(p));
            }
        }
        Ok(page)
    }
}
