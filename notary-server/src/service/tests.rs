//! `RepoService` over an in-memory SQLite store and in-process keys: publish, read, delete, and
//! the errors a client's mistake gets.

use std::sync::Arc;

use bytes::Bytes;
use notary_bench::repo::RustRepo;
use notary_common::db::{Db, PoolConfig};
use notary_signer::memory::MemoryKeyStore;
use notary_tuf::metadata::SignedFile;

use super::{RepoService, ServiceError, ServiceOptions};
use crate::audit::Actor;
use crate::cache::MetaCache;
use crate::gun::Gun;
use crate::role::Role;
use crate::storage::SqlStore;

async fn service(read_only: bool) -> Arc<RepoService> {
    let db = Db::connect("sqlite::memory:", &PoolConfig::default())
        .await
        .expect("in-memory SQLite");
    service_on(db, read_only).await
}

async fn service_on(db: Db, read_only: bool) -> Arc<RepoService> {
    let store = Arc::new(SqlStore::new(db).await.expect("migrated"));
    Arc::new(RepoService::new(
        store,
        Arc::new(MetaCache::new(100, 100, 1 << 20)),
        Arc::new(MemoryKeyStore::new()),
        ServiceOptions {
            mirror: false,
            key_algorithm: "ecdsa".into(),
            check_period: std::time::Duration::from_millis(100),
            read_only,
            lease: None,
        },
    ))
}

/// A repository whose timestamp and snapshot keys the service made.
async fn repo(s: &RepoService, g: &Gun) -> RustRepo {
    let actor = Actor::default();
    let allow = || Ok::<(), ServiceError>(());
    let ts = s.get_key(g, &Role::TIMESTAMP, allow, &actor).await.unwrap();
    let sn = s.get_key(g, &Role::SNAPSHOT, allow, &actor).await.unwrap();
    RustRepo::new(g, sn, ts)
}

fn parts(files: &[(&str, Vec<u8>)]) -> Vec<(String, Bytes)> {
    files
        .iter()
        .map(|(r, b)| (r.to_string(), Bytes::from(b.clone())))
        .collect()
}

#[tokio::test]
async fn a_publish_is_read_back_as_sent_with_the_servers_snapshot_and_timestamp() {
    let s = service(false).await;
    let g = Gun::new("example.com/unit/service").unwrap();
    let r = repo(&s, &g).await;
    let (root, targets) = (r.root_file(1), r.targets_file(1, &[("v1", b"one")]));
    s.publish(
        &g,
        parts(&[("root", root.clone()), ("targets", targets.clone())]),
        &Actor::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        &s.current(&g, &Role::TARGETS).await.unwrap().data[..],
        &targets
    );
    assert_eq!(
        &s.by_version(&g, &Role::ROOT, 1).await.unwrap().data[..],
        &root
    );
    let ts = s.current(&g, &Role::TIMESTAMP).await.unwrap();
    assert_eq!(SignedFile::parse(&ts.data).unwrap().common.version, 1);
    let feed = s.changes(None, 0, 100).await.unwrap();
    assert_eq!(feed.count, 1);

    // The same targets version again: refused, nothing changes.
    let e = s
        .publish(
            &g,
            parts(&[("targets", targets.clone())]),
            &Actor::default(),
        )
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert_eq!(s.changes(None, 0, 100).await.unwrap().count, 1);
}

#[tokio::test]
async fn malformed_uploads_and_missing_metadata_are_the_clients_errors() {
    let s = service(false).await;
    let g = Gun::new("example.com/unit/errors").unwrap();
    let e = s
        .publish(
            &g,
            parts(&[("targets", b"{not json".to_vec())]),
            &Actor::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::MalformedJson(_)), "{e}");
    assert!(matches!(
        s.current(&g, &Role::TIMESTAMP).await.unwrap_err(),
        ServiceError::NotFound
    ));
    assert!(matches!(
        s.by_checksum(&g, &Role::SNAPSHOT, &"0".repeat(64))
            .await
            .unwrap_err(),
        ServiceError::NotFound
    ));
}

#[tokio::test]
async fn a_deleted_repository_is_gone_and_a_read_only_service_writes_nothing() {
    let s = service(false).await;
    let g = Gun::new("example.com/unit/deleted").unwrap();
    let r = repo(&s, &g).await;
    s.publish(
        &g,
        parts(&[
            ("root", r.root_file(1)),
            ("targets", r.targets_file(1, &[])),
        ]),
        &Actor::default(),
    )
    .await
    .unwrap();
    assert!(s.delete(&g, &Actor::default()).await.unwrap());
    assert!(matches!(
        s.current(&g, &Role::ROOT).await.unwrap_err(),
        ServiceError::NotFound
    ));
    assert!(!s.delete(&g, &Actor::default()).await.unwrap(), "twice");

    let ro = service(true).await;
    assert!(matches!(
        ro.delete(&g, &Actor::default()).await.unwrap_err(),
        ServiceError::ReadOnly
    ));
    let e = ro
        .get_key(
            &g,
            &Role::TIMESTAMP,
            || Ok::<(), ServiceError>(()),
            &Actor::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::ReadOnly), "{e}");
}

/// Changefeed pages (`changefeed`, invariants 1–2): a full forward page is kept and served as
/// kept — shown here by removing its rows behind the service's back, which nothing else ever
/// does — while a page of the tail is served again only until the next write.
#[tokio::test]
async fn changefeed_pages_full_ones_are_kept_and_the_tail_follows_writes() {
    let db = Db::connect("sqlite::memory:", &PoolConfig::default())
        .await
        .expect("in-memory SQLite");
    let s = service_on(db.clone(), false).await;
    let publish = |name: String| {
        let s = s.clone();
        async move {
            let g = Gun::new(&name).unwrap();
            let r = repo(&s, &g).await;
            let files = [
                ("root", r.root_file(1)),
                ("targets", r.targets_file(1, &[])),
            ];
            s.publish(&g, parts(&files), &Actor::default())
                .await
                .unwrap();
        }
    };
    for i in 0..3 {
        publish(format!("example.com/unit/feed{i}")).await;
    }
    let full = s.changes(None, 0, 2).await.unwrap();
    assert_eq!(full.count, 2);
    let tail = s.changes(None, 0, 100).await.unwrap();
    assert_eq!(tail.count, 3);
    assert!(
        Arc::ptr_eq(&tail, &s.changes(None, 0, 100).await.unwrap()),
        "no write since: the tail page as kept"
    );

    notary_common::with_pool!(&db, p => sqlx::query("DELETE FROM changefeed WHERE id <= 2").execute(p).await.map(|_| ()))
        .unwrap();
    assert_eq!(s.changes(None, 0, 2).await.unwrap().json, full.json);

    publish("example.com/unit/feed3".into()).await;
    let after = s.changes(None, 0, 100).await.unwrap();
    let text = String::from_utf8_lossy(&after.json).to_string();
    assert_eq!(after.count, 2, "{text}");
    assert!(text.contains("example.com/unit/feed3"), "{text}");
}
