//! Several server instances on one database: every instance serves every committed publish at
//! once (caches never hold back a newer timestamp), and deletions reach other instances' caches.
#![cfg(feature = "system-tests")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use sha2::Digest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_see_each_others_writes_at_once() {
    let db = create_pg_db().await;
    let a = Server::start_with_db(&db).await;
    let b = Server::start_with_db(&db).await;
    let gun = "example.com/multi/repo";
    // Both instances share the server keys: the local trust service keeps them in the database.
    let repo = init_repo(&a, gun).await;
    for v in 2..12 {
        // B has the previous timestamp cached...
        let (st, before) = b.get(&b.tuf(gun, "timestamp.json")).await;
        assert_eq!(st, 200);
        assert_eq!(version_of(&before), v - 1);
        let (st, _) = a.publish_version(&repo, v).await;
        assert_eq!(st, 200);
        // ...and serves the new one on the very next request.
        let (_, after) = b.get(&b.tuf(gun, "timestamp.json")).await;
        assert_eq!(
            version_of(&after),
            v,
            "instance B served an older timestamp than committed"
        );
        let (_, targets) = b.get(&b.tuf(gun, "targets.json")).await;
        assert_eq!(version_of(&targets), v);
    }
    // A publish through B is seen by A at once too.
    let (st, _) = b
        .post_parts(gun, &[("targets", &repo.targets_file(20, &[("x", b"x")]))])
        .await;
    assert_eq!(st, 200);
    assert_eq!(version_of(&a.get(&a.tuf(gun, "targets.json")).await.1), 20);

    // B caches a file by checksum; A deletes the repository; B stops serving it.
    let (_, ts) = b.get(&b.tuf(gun, "timestamp.json")).await;
    let sha = snapshot_sha_from_timestamp(&ts);
    let by_hash = b.tuf(gun, &format!("snapshot.{sha}.json"));
    assert_eq!(b.get(&by_hash).await.0, 200);
    assert_eq!(
        a.http.delete(a.tuf(gun, "")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        b.get(&b.tuf(gun, "timestamp.json")).await.0,
        404,
        "current reads see the deletion at once"
    );
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(200),
        async || match b.get(&by_hash).await.0 {
            404 => Ok(()),
            st => Err(format!(
                "B still serves a deleted repository's file by checksum ({st})"
            )),
        },
    )
    .await;
}

/// A writer publishes through A while readers hammer B: every read that starts after a publish
/// was acknowledged serves it (or something newer), and no reader ever sees versions go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_never_lag_acknowledged_publishes() {
    reads_never_lag_publishes(false).await
}

/// The same with the readers on the publishing instance itself, which does not read its own
/// writes back from the database but installs them when the changefeed reaches them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_on_the_writer_never_lag_its_publishes() {
    reads_never_lag_publishes(true).await
}

async fn reads_never_lag_publishes(read_from_writer: bool) {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    use std::sync::Arc;
    let db = create_pg_db().await;
    let a = Arc::new(Server::start_with_db(&db).await);
    let b = if read_from_writer {
        a.clone()
    } else {
        Arc::new(Server::start_with_db(&db).await)
    };
    let gun = "example.com/multi/strict";
    let repo = init_repo(&a, gun).await;
    let acked = Arc::new(AtomicI64::new(1));
    let finished = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (b, acked, finished) = (b.clone(), acked.clone(), finished.clone());
        readers.push(tokio::spawn(async move {
            let (mut reads, mut last_ts) = (0u64, 0);
            while !finished.load(Ordering::SeqCst) {
                let floor = acked.load(Ordering::SeqCst);
                let file = if r % 2 == 0 { "targets.json" } else { "timestamp.json" };
                let (st, body) = b.get(&b.tuf(gun, file)).await;
                assert_eq!(st, 200);
                let v = version_of(&body);
                if file == "targets.json" {
                    assert!(v >= floor, "B served targets v{v} after v{floor} was acknowledged");
                } else {
                    assert!(v >= last_ts, "B's timestamp went back from v{last_ts} to v{v}");
                    // each targets publish makes the next timestamp: timestamp vN goes with targets vN
                    assert!(v >= floor, "B served timestamp v{v} after the publish of targets v{floor} was acknowledged");
                    last_ts = v;
                }
                // By version: every acknowledged targets version is there.
                let (st, _) = b.get(&b.tuf(gun, &format!("{floor}.targets.json"))).await;
                assert_eq!(st, 200, "{floor}.targets.json missing on B after it was acknowledged");
                reads += 1;
            }
            reads
        }));
    }
    for v in 2..=40 {
        let (st, body) = a.publish_version(&repo, v).await;
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        acked.store(v, Ordering::SeqCst);
    }
    finished.store(true, Ordering::SeqCst);
    let mut total = 0;
    for r in readers {
        total += r.await.unwrap();
    }
    assert!(total > 40, "readers made only {total} reads");
}

/// The publishing instance serves what it just wrote (installed from the write, not read back)
/// exactly as an instance that loads it from the database does: same bytes, same headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_serves_its_own_write_as_the_database_holds_it() {
    let db = create_pg_db().await;
    let a = Server::start_with_db(&db).await;
    let b = Server::start_with_db(&db).await;
    let gun = "example.com/multi/own-writes";
    let repo = init_repo(&a, gun).await;
    async fn get(s: &Server, file: &str, gun: &str) -> (u16, Vec<(String, String)>, String) {
        let r = s.http.get(s.tuf(gun, file)).send().await.unwrap();
        let status = r.status().as_u16();
        let headers = [
            "content-type",
            "etag",
            "last-modified",
            "cache-control",
            "content-length",
        ]
        .iter()
        .map(|h| {
            (
                h.to_string(),
                r.headers()
                    .get(*h)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
        (
            status,
            headers,
            String::from_utf8_lossy(&r.bytes().await.unwrap()).into_owned(),
        )
    }
    for v in 2..6 {
        // A has the previous chain cached (read it), then publishes.
        assert_eq!(get(&a, "timestamp.json", gun).await.0, 200);
        let (st, body) = a.publish_version(&repo, v).await;
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        // Read from A first (its installed copy), then from B (loaded from the database).
        let (_, ts) = a.get(&a.tuf(gun, "timestamp.json")).await;
        let snapshot_sha = snapshot_sha_from_timestamp(&ts);
        let (_, targets) = a.get(&a.tuf(gun, "targets.json")).await;
        let targets_sha = hex::encode(sha2::Sha256::digest(&targets));
        for file in [
            "timestamp.json".to_string(),
            "snapshot.json".into(),
            "targets.json".into(),
            "root.json".into(),
            format!("snapshot.{snapshot_sha}.json"),
            format!("targets.{targets_sha}.json"),
            format!("{v}.targets.json"),
        ] {
            let from_a = get(&a, &file, gun).await;
            let from_b = get(&b, &file, gun).await;
            assert_eq!(from_a.0, 200, "{file} on A");
            assert_eq!(
                from_a, from_b,
                "{file}: the writer serves it differently from an instance that loaded it"
            );
        }
        assert_eq!(version_of(&targets), v);
    }
}

/// Reads by version are cached, yet a deleted and re-created repository (which reuses version
/// numbers) is served with its new content by every instance at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_reads_follow_deletion_and_recreation() {
    let db = create_pg_db().await;
    let a = Server::start_with_db(&db).await;
    let b = Server::start_with_db(&db).await;
    let gun = "example.com/multi/recreated";
    init_repo(&a, gun).await;
    let (st, old_root) = b.get(&b.tuf(gun, "1.root.json")).await;
    assert_eq!(st, 200);
    assert_eq!(
        b.get(&b.tuf(gun, "1.root.json")).await.1,
        old_root,
        "second read (cached) differs"
    );
    assert_eq!(
        a.http.delete(a.tuf(gun, "")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        b.get(&b.tuf(gun, "1.root.json")).await.0,
        404,
        "B still serves a deleted version"
    );
    init_repo(&a, gun).await; // new root key: new root v1
    let (st, new_root) = b.get(&b.tuf(gun, "1.root.json")).await;
    assert_eq!(st, 200);
    assert_ne!(
        new_root, old_root,
        "B served the deleted repository's root v1"
    );
}

/// The re-signing lock: one holder at a time across instances (here: two stores on one
/// database), released when dropped.
#[tokio::test]
async fn resign_lock_has_one_holder() {
    use notary_server::storage::SqlStore;
    let db = create_pg_db().await;
    let cfg = notary_common::db::PoolConfig::default();
    let a = SqlStore::new(notary_common::db::Db::connect(&db, &cfg).await.unwrap())
        .await
        .unwrap();
    let b = SqlStore::new(notary_common::db::Db::connect(&db, &cfg).await.unwrap())
        .await
        .unwrap();
    let held = a.try_lock("resign example.com/x").await.unwrap();
    assert!(held.is_some());
    assert!(
        b.try_lock("resign example.com/x").await.unwrap().is_none(),
        "two instances hold the same lease"
    );
    assert!(
        b.try_lock("resign example.com/y").await.unwrap().is_some(),
        "another repository's lease is free"
    );
    drop(held);
    eventually(
        Duration::from_secs(5),
        Duration::from_millis(20),
        async || match b.try_lock("resign example.com/x").await.unwrap() {
            Some(_) => Ok(()),
            None => Err("a dropped lease was not released".to_string()),
        },
    )
    .await;
}

/// Timestamps are re-signed in the background before they expire, by one instance per
/// repository: three instances cache the repository and are told to re-sign 2 s after each
/// signature (14 days − 2 s before expiry); every new version is made exactly once, no read
/// has to sign, and no instance ever serves an older timestamp than it served before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_resigning_happens_once_per_repository() {
    let db = create_pg_db().await;
    let cfg = serde_json::json!({"caching": {"resign_before_expiry_seconds": 14 * 86400 - 2, "resign_check_seconds": 1}});
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Server::start_with_config(&db, cfg.clone()).await);
    }
    let gun = "example.com/multi/resign";
    init_repo(&servers[0], gun).await;
    let mut last = [0i64; 3];
    let end = Instant::now() + Duration::from_secs(9);
    while Instant::now() < end {
        for (i, s) in servers.iter().enumerate() {
            let (st, ts) = s.get(&s.tuf(gun, "timestamp.json")).await;
            assert_eq!(st, 200);
            let v = version_of(&ts);
            assert!(
                v >= last[i],
                "instance {i} went back from timestamp v{} to v{v}",
                last[i]
            );
            last[i] = v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, ts) = servers[0].get(&servers[0].tuf(gun, "timestamp.json")).await;
    let newest = version_of(&ts);
    assert!(
        newest >= 3,
        "expected at least two background re-signs, newest timestamp is v{newest}"
    );
    let logs: String = servers.iter().map(|s| s.log()).collect();
    let ahead = logs
        .lines()
        .filter(|l| l.contains("re-signed timestamp") && l.contains("ahead=true"))
        .count();
    let on_read = logs
        .lines()
        .filter(|l| l.contains("re-signed timestamp") && l.contains("ahead=false"))
        .count();
    let lost = logs
        .lines()
        .filter(|l| l.contains("re-signed the timestamp first"))
        .count();
    // The newest version may have been stored after our last read; every stored one is logged.
    assert!(
        ahead as i64 == newest - 1 || ahead as i64 == newest,
        "{ahead} background re-signs logged for {newest} versions:\n{logs}"
    );
    assert_eq!(on_read, 0, "a read had to re-sign");
    assert_eq!(lost, 0, "two instances re-signed the same version:\n{logs}");
}

/// Changefeed pages are kept once built (`service::changefeed`), yet every page a client asks
/// of instance B right after a publish through A shows it: the newest page, the tail after the
/// last ID the client saw, and the publishing repository's own page — with B's read lease
/// (pages kept without a round trip) and without (a barrier per page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changefeed_pages_follow_writes_on_other_instances() {
    for read_lease in [true, false] {
        pages_follow_writes(read_lease).await;
    }
}

async fn pages_follow_writes(read_lease: bool) {
    let db = create_pg_db().await;
    let a = Server::start_with_db(&db).await;
    let b = Server::start_with_config(
        &db,
        serde_json::json!({"caching": {"read_lease": read_lease}}),
    )
    .await;
    let gun = "example.com/multi/feed";
    let repo = init_repo(&a, gun).await;
    let page = |query: String| {
        let b = &b;
        async move {
            let (st, body) = b.get(&format!("{}/v2/{query}", b.url)).await;
            assert_eq!(st, 200);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            v["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["ID"].as_str().unwrap().to_string(),
                        r["Version"].as_i64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let mut last_id = page("_trust/changefeed?change_id=0&records=100".into())
        .await
        .last()
        .unwrap()
        .0
        .clone();
    for v in 2..22 {
        // B builds and keeps the pages as they are...
        let newest = "_trust/changefeed?change_id=-1&records=10".to_string();
        let tail = format!("_trust/changefeed?change_id={last_id}&records=100");
        let own = format!("{gun}/_trust/changefeed?change_id=-1&records=5");
        for q in [&newest, &tail, &own] {
            page(q.clone()).await;
        }
        let (st, _) = a.publish_version(&repo, v).await;
        assert_eq!(st, 200);
        // ...and shows the publish through A on the very next request of each.
        for q in [&newest, &own] {
            let rows = page(q.clone()).await;
            assert_eq!(rows.last().unwrap().1, v, "{q}: {rows:?}");
        }
        let rows = page(tail).await;
        assert_eq!(rows.len(), 1, "the tail after {last_id}: {rows:?}");
        assert_eq!(rows[0].1, v);
        last_id = rows[0].0.clone();
    }
}
