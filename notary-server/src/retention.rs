//! Retention: which stored versions `notary-server prune` (and the `retention` config block)
//! may remove. Every publish and re-sign adds rows, and Go never deletes any.
//!
//! 1. A version is removed only if it is older than the `keep_versions` newest of its role
//!    (at least 1) **and** was stored more than `keep_days` ago. —
//!    `retention::tests::only_old_versions_beyond_the_newest_go`,
//!    `retention::prune_keeps_what_clients_need`.
//! 2. No root version is ever removed: clients walk the root chain version by version. —
//!    `retention::tests::roots_are_never_removed`, `retention::prune_keeps_what_clients_need`.
//! 3. Nothing the current chain references is removed: the newest timestamp, the snapshot it
//!    names, the targets and delegations that snapshot names. —
//!    `retention::tests::what_the_current_chain_names_stays`.
//! 4. One GUN at a time, in one transaction; publishes meanwhile only add newer versions, which
//!    (1) keeps. A Go client holding an old trust cache still updates (it fetches current
//!    files and the root chain). — `retention::prune_keeps_what_clients_need`.
//! 5. Instances that already cached a removed version (by version or checksum) may keep
//!    serving it until their cache evicts it: it is immutable, signed content.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDateTime;

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Policy {
    /// The newest versions of each role always kept (at least 1).
    pub keep_versions: u32,
    /// Versions stored within this many days are kept.
    pub keep_days: u32,
}

/// One stored file, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    /// Its row ID.
    pub id: i64,
    /// The role.
    pub role: String,
    /// The version.
    pub version: i64,
    /// When it was stored (the epoch for Go rows without a time).
    pub created_at: NaiveDateTime,
}

/// The ids of `files` (one GUN) that `policy` lets go at `now`; `protected`: the (role,
/// version) pairs the current chain references (3).
pub(crate) fn removable(
    files: &[FileRow],
    protected: &HashSet<(String, i64)>,
    policy: Policy,
    now: NaiveDateTime,
) -> Vec<i64> {
    let keep = policy.keep_versions.max(1) as usize;
    let cutoff = now - chrono::Duration::days(i64::from(policy.keep_days));
    let mut by_role: BTreeMap<&str, Vec<&FileRow>> = BTreeMap::new();
    for f in files {
        by_role.entry(f.role.as_str()).or_default().push(f);
    }
    let mut out = Vec::new();
    for (role, mut rows) in by_role {
        if role == notary_tuf::metadata::ROOT {
            continue;
        }
        rows.sort_by_key(|f| std::cmp::Reverse(f.version));
        for f in rows.into_iter().skip(keep) {
            if f.created_at < cutoff && !protected.contains(&(f.role.clone(), f.version)) {
                out.push(f.id);
            }
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(days_ago: i64) -> NaiveDateTime {
        now() - chrono::Duration::days(days_ago)
    }

    fn now() -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
    }

    /// `versions` of `role`, version v stored `100 - v` days ago, ids from `first_id`.
    fn rows(role: &str, versions: std::ops::RangeInclusive<i64>, first_id: i64) -> Vec<FileRow> {
        versions
            .enumerate()
            .map(|(i, v)| FileRow {
                id: first_id + i as i64,
                role: role.into(),
                version: v,
                created_at: t(100 - v),
            })
            .collect()
    }

    #[test]
    fn only_old_versions_beyond_the_newest_go() {
        let files = rows("targets", 1..=20, 1);
        let policy = Policy {
            keep_versions: 5,
            keep_days: 90,
        };
        // Versions 1..=15 are beyond the newest 5; of those, only 1..=9 are older than 90 days.
        let gone = removable(&files, &HashSet::new(), policy, now());
        assert_eq!(gone, (1..=9).collect::<Vec<_>>());
        // keep_versions 0 still keeps the newest.
        let all_old = Policy {
            keep_versions: 0,
            keep_days: 0,
        };
        let gone = removable(&files, &HashSet::new(), all_old, now());
        assert_eq!(gone, (1..=19).collect::<Vec<_>>());
    }

    #[test]
    fn roots_are_never_removed() {
        let files = rows("root", 1..=10, 1);
        let policy = Policy {
            keep_versions: 1,
            keep_days: 0,
        };
        assert!(removable(&files, &HashSet::new(), policy, now()).is_empty());
    }

    #[test]
    fn what_the_current_chain_names_stays() {
        // The snapshot names delegation version 3 although 4 and 5 exist (e.g. rolled back).
        let mut files = rows("targets/releases", 1..=5, 1);
        files.extend(rows("snapshot", 1..=5, 10));
        let protected: HashSet<(String, i64)> = [
            ("targets/releases".to_string(), 3),
            ("snapshot".to_string(), 5),
        ]
        .into();
        let policy = Policy {
            keep_versions: 1,
            keep_days: 0,
        };
        let gone = removable(&files, &protected, policy, now());
        assert_eq!(gone, vec![1, 2, 4, 10, 11, 12, 13]);
    }
}
