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
