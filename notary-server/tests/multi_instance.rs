//! Several server instances on one database: every instance serves every committed publish at
//! once (caches never hold back a newer timestamp), and deletions reach other instances' caches.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn version_of(file: &[u8]) -> i64 {
    let v: serde_json::Value = serde_json::from_slice(file).unwrap();
    v["signed"]["version"].as_i64().unwrap()
}

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
        let (st, _) = a.post_parts(gun, &[("targets", &repo.targets_file(v, &[("t", &[v as u8])]))]).await;
        assert_eq!(st, 200);
        // ...and serves the new one on the very next request.
        let (_, after) = b.get(&b.tuf(gun, "timestamp.json")).await;
        assert_eq!(version_of(&after), v, "instance B served an older timestamp than committed");
        let (_, targets) = b.get(&b.tuf(gun, "targets.json")).await;
        assert_eq!(version_of(&targets), v);
    }
    // A publish through B is seen by A at once too.
    let (st, _) = b.post_parts(gun, &[("targets", &repo.targets_file(20, &[("x", b"x")]))]).await;
    assert_eq!(st, 200);
    assert_eq!(version_of(&a.get(&a.tuf(gun, "targets.json")).await.1), 20);

    // B caches a file by checksum; A deletes the repository; B stops serving it.
    let (_, ts) = b.get(&b.tuf(gun, "timestamp.json")).await;
    let sha = snapshot_sha_from_timestamp(&ts);
    let by_hash = b.tuf(gun, &format!("snapshot.{sha}.json"));
    assert_eq!(b.get(&by_hash).await.0, 200);
    assert_eq!(a.http.delete(a.tuf(gun, "")).send().await.unwrap().status(), 200);
    assert_eq!(b.get(&b.tuf(gun, "timestamp.json")).await.0, 404, "current reads see the deletion at once");
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.get(&by_hash).await.0 != 404 {
        assert!(Instant::now() < deadline, "B still serves a deleted repository's file by checksum");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A writer publishes through A while readers hammer B: every read that starts after a publish
/// was acknowledged serves it (or something newer), and no reader ever sees versions go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_never_lag_acknowledged_publishes() {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    use std::sync::Arc;
    let db = create_pg_db().await;
    let a = Server::start_with_db(&db).await;
    let b = Arc::new(Server::start_with_db(&db).await);
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
        let (st, body) = a.post_parts(gun, &[("targets", &repo.targets_file(v, &[("t", &[v as u8])]))]).await;
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
    assert_eq!(b.get(&b.tuf(gun, "1.root.json")).await.1, old_root, "second read (cached) differs");
    assert_eq!(a.http.delete(a.tuf(gun, "")).send().await.unwrap().status(), 200);
    assert_eq!(b.get(&b.tuf(gun, "1.root.json")).await.0, 404, "B still serves a deleted version");
    init_repo(&a, gun).await; // new root key: new root v1
    let (st, new_root) = b.get(&b.tuf(gun, "1.root.json")).await;
    assert_eq!(st, 200);
    assert_ne!(new_root, old_root, "B served the deleted repository's root v1");
}
