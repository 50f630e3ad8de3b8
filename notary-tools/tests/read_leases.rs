//! Current reads under a read lease (Postgres): served from the cache with no database round
//! trip, yet never older than what was committed when they arrived — also when an instance is
//! frozen, stopped, or when a server that does not announce its writes shares the database.
#![cfg(feature = "system-tests")]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A counter or gauge from `/metrics` (the first sample whose name and labels start so).
async fn metric(s: &Server, sample: &str) -> f64 {
    let url = format!("{}/metrics", s.url);
    let (st, body) = s.get(&url).await;
    assert_eq!(st, 200);
    let body = String::from_utf8(body).unwrap();
    metric_sample(&body, sample)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics:\n{body}"))
}

async fn wait_for_lease(s: &Server, held: bool) {
    eventually(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || match (metric(s, "notary_rs_read_lease").await == 1.0) == held {
            true => Ok(()),
            false => Err(format!(
                "read lease never {}: {}",
                if held { "held" } else { "given up" },
                s.log()
            )),
        },
    )
    .await
}

/// Two instances on a new database, both holding read leases, with `gun` published through
/// A (version 1) and cached by B.
async fn two_leased_instances(gun: &str) -> (String, Server, Server, RustRepo) {
    let db = create_pg_db().await;
    let a = Server::start_with_db(&db).await;
    let b = Server::start_with_db(&db).await;
    let repo = init_repo(&a, gun).await;
    wait_for_lease(&a, true).await;
    wait_for_lease(&b, true).await;
    assert_eq!(version_of(&b.get(&b.tuf(gun, "timestamp.json")).await.1), 1);
    (db, a, b, repo)
}

const LEASED: &str = "notary_rs_fresh_reads_total{by=\"lease\"}";
const CHECKED: &str = "notary_rs_fresh_reads_total{by=\"changefeed_check\"}";
const CHECKS: &str = "notary_rs_changefeed_checks_total";

/// 300 reads in a row: under the lease they cost no changefeed check; with `read_lease` off
/// each one waits for a check of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_reads_skip_the_database_under_a_lease() {
    for fast in [true, false] {
        let db = create_pg_db().await;
        let s =
            Server::start_with_config(&db, serde_json::json!({"caching": {"read_lease": fast}}))
                .await;
        let gun = "example.com/lease/reads";
        init_repo(&s, gun).await;
        if fast {
            wait_for_lease(&s, true).await;
        }
        let url = s.tuf(gun, "timestamp.json");
        assert_eq!(s.get(&url).await.0, 200);
        let (leased, checked, checks) = (
            metric(&s, LEASED).await,
            metric(&s, CHECKED).await,
            metric(&s, CHECKS).await,
        );
        for _ in 0..300 {
            let (st, body) = s.get(&url).await;
            assert_eq!(st, 200);
            assert_eq!(version_of(&body), 1);
        }
        let leased = metric(&s, LEASED).await - leased;
        let checked = metric(&s, CHECKED).await - checked;
        let checks = metric(&s, CHECKS).await - checks;
        if fast {
            // (All of them unless a renewal was late on a loaded machine.)
            assert!(
                leased >= 250.0 && leased + checked == 300.0,
                "{leased} of 300 reads under the lease, {checked} checked"
            );
            // Hardly more than the once-a-second background check ran meanwhile.
            assert!(
                checks < 60.0,
                "{checks} changefeed checks for 300 reads, {leased} under the lease"
            );
        } else {
            assert_eq!((leased, checked), (0.0, 300.0), "read_lease off");
            assert!(
                checks >= 250.0,
                "only {checks} changefeed checks for 300 reads one after another"
            );
        }
    }
}

/// B is frozen (SIGSTOP) while holding a lease with version 1 cached: a publish through A
/// waits for B's lease to end (B cannot acknowledge), then commits; B, thawed, serves version
/// 2 at once — its lease ended on its own clock before it ended in the database — and later
/// takes a lease again and keeps up with A's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_instance_serves_no_stale_timestamp_when_it_thaws() {
    let gun = "example.com/lease/frozen";
    let (_db, a, b, repo) = two_leased_instances(gun).await;

    b.signal("STOP");
    let started = Instant::now();
    let (st, body) = a
        .post_parts(gun, &[("targets", &repo.targets_file(2, &[("t", b"2")]))])
        .await;
    let took = started.elapsed();
    b.signal("CONT");
    eprintln!("the publish was held up {took:?} by the frozen instance");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        took >= Duration::from_secs(1),
        "the publish did not wait for the frozen instance's lease ({took:?})"
    );
    assert!(
        took < Duration::from_secs(8),
        "the publish waited {took:?}: more than the lease"
    );
    let (st, ts) = b.get(&b.tuf(gun, "timestamp.json")).await;
    assert_eq!(st, 200);
    assert_eq!(
        version_of(&ts),
        2,
        "the thawed instance served a timestamp older than the committed one"
    );

    wait_for_lease(&b, true).await;
    assert!(
        !b.log().contains("without an announcement"),
        "the thawed instance took writes it missed for unannounced ones: {}",
        b.log()
    );
    for v in 3..6 {
        let started = Instant::now();
        let (st, _) = a.publish_version(&repo, v).await;
        assert_eq!(st, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "publish {v} held up for {:?}",
            started.elapsed()
        );
        assert_eq!(version_of(&b.get(&b.tuf(gun, "timestamp.json")).await.1), v);
        assert_eq!(version_of(&b.get(&b.tuf(gun, "targets.json")).await.1), v);
    }
    assert!(metric(&b, LEASED).await > 0.0);
}

/// An instance that stops cleanly gives its lease up: the next publish is not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_gives_its_lease_up() {
    let db = create_pg_db().await;
    let a = Server::start_with_db(&db).await;
    let mut b = Server::start_with_db(&db).await;
    let gun = "example.com/lease/stopped";
    let repo = init_repo(&a, gun).await;
    wait_for_lease(&b, true).await;
    b.signal("TERM");
    assert!(
        b.exited_within(Duration::from_secs(10))
            .await
            .is_some_and(|s| s.success()),
        "{}",
        b.log()
    );
    let started = Instant::now();
    let (st, _) = a
        .post_parts(gun, &[("targets", &repo.targets_file(2, &[("t", b"2")]))])
        .await;
    assert_eq!(st, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the publish waited {:?} for a stopped instance",
        started.elapsed()
    );
}

/// The Go notary-server writes to the same database without announcing: our instance notices
/// the first such write, stops serving under its lease, and from then on serves every Go
/// publish at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unannounced_writer_turns_leased_reads_off() {
    let db = create_go_pg_db().await;
    let s = Server::start_with_db(&db).await;
    wait_for_lease(&s, true).await;
    let go = GoServer::start(&db).await;
    let f = write_file(s.tmp(), "t.txt", b"go\n");
    let gun = "example.com/lease/go";
    let w = go.notary(&go.tmp.path().join("writer"));
    w.ok(&["init", gun]);
    w.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    w.ok(&["publish", gun]);
    wait_for_lease(&s, false).await;
    assert!(s.log().contains("without an announcement"), "{}", s.log());
    for v in 2..5 {
        let (_, ts) = s.get(&s.tuf(gun, "timestamp.json")).await;
        let before = version_of(&ts);
        w.ok(&["add", gun, &format!("v{v}"), f.to_str().unwrap()]);
        w.ok(&["publish", gun]);
        let (st, ts) = s.get(&s.tuf(gun, "timestamp.json")).await;
        assert_eq!(st, 200);
        assert!(
            version_of(&ts) > before,
            "served timestamp {} after the Go server published over {before}",
            version_of(&ts)
        );
    }
}

/// The guard in the write statement itself (migration 3): a lease holder that did not
/// acknowledge a write makes it store nothing; a publish waits for such a lease to end, and
/// fails with 503 if it does not end within the write deadline (10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_commits_only_with_every_lease_holders_acknowledgement() {
    use notary_server::gun::Gun;
    use notary_server::storage::{SqlStore, StoreError};
    use notary_tuf::validation::Update;
    use sqlx::Connection;
    let db = create_pg_db().await;
    let s = Server::start_with_db(&db).await;
    let gun = "example.com/lease/guard";
    let repo = init_repo(&s, gun).await;
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    let silent = |secs: i64| {
        format!(
            "INSERT INTO notary_rs_instances (id, lease_until) VALUES ('silent', clock_timestamp() + interval '{secs} seconds') \
             ON CONFLICT (id) DO UPDATE SET lease_until = EXCLUDED.lease_until"
        )
    };

    // The statement's guard, directly.
    let store = SqlStore::new(
        notary_common::db::Db::connect(&db, &Default::default())
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    sqlx::query(&silent(60)).execute(&mut conn).await.unwrap();
    let files = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM tuf_files WHERE gun = 'example.com/lease/other'",
        )
    };
    let u = [Update {
        role: "timestamp".into(),
        version: 1,
        data: b"ts".to_vec().into(),
    }];
    let at = notary_server::storage::now();
    let others = vec!["someone-else".to_string()];
    assert!(matches!(
        store
            .update_many(
                &Gun::new("example.com/lease/other").unwrap(),
                &u,
                at,
                Some(&others),
                None
            )
            .await,
        Err(StoreError::Unacknowledged)
    ));
    assert!(matches!(
        store
            .delete(&Gun::new(gun).unwrap(), Some(&others), None)
            .await,
        Err(StoreError::Unacknowledged)
    ));
    assert_eq!(
        files().fetch_one(&mut conn).await.unwrap(),
        0,
        "an unacknowledged write stored something"
    );
    // (The server holds a lease too.)
    let all: Vec<String> = sqlx::query_scalar("SELECT array_agg(id) FROM notary_rs_instances")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(all.len() == 2, "{all:?}");
    store
        .update_many(
            &Gun::new("example.com/lease/other").unwrap(),
            &u,
            at,
            Some(&all),
            None,
        )
        .await
        .unwrap();
    assert_eq!(files().fetch_one(&mut conn).await.unwrap(), 1);

    // Through the server: the silent holder's lease ends in 2 s; the publish waits for it.
    sqlx::query(&silent(2)).execute(&mut conn).await.unwrap();
    let started = Instant::now();
    let (st, body) = s
        .post_parts(gun, &[("targets", &repo.targets_file(2, &[("t", b"2")]))])
        .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "published after {:?} without the lease holder",
        started.elapsed()
    );

    // A holder that never answers and never goes away: 503 after the deadline, nothing stored.
    sqlx::query(&silent(60)).execute(&mut conn).await.unwrap();
    let (st, body) = s
        .post_parts(gun, &[("targets", &repo.targets_file(3, &[("t", b"3")]))])
        .await;
    assert_eq!(st, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(api_error(&body).0, "UNAVAILABLE");
    sqlx::query("DELETE FROM notary_rs_instances WHERE id = 'silent'")
        .execute(&mut conn)
        .await
        .unwrap();
    let (st, ts) = s.get(&s.tuf(gun, "timestamp.json")).await;
    assert_eq!(
        (st, version_of(&ts)),
        (200, 2),
        "the refused publish left something behind"
    );
    let (st, _) = s
        .post_parts(gun, &[("targets", &repo.targets_file(3, &[("t", b"3")]))])
        .await;
    assert_eq!(st, 200, "the same publish once the silent lease is gone");
}

/// The database kills both instances' listener connections (a restart of a pooler, an
/// idle-connection reaper): they stop serving under their leases, listen again, register again,
/// and no read serves a timestamp older than an acknowledged publish meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_listener_connections_are_replaced_without_stale_reads() {
    use sqlx::Connection;
    let gun = "example.com/lease/listeners";
    let (db, a, b, repo) = two_leased_instances(gun).await;
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        killed,
        vec![true, true],
        "expected one listener connection per instance"
    );
    for v in 2..5 {
        let (st, body) = a.publish_version(&repo, v).await;
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            version_of(&b.get(&b.tuf(gun, "timestamp.json")).await.1),
            v,
            "B served an older timestamp after its listener was killed"
        );
        assert_eq!(version_of(&a.get(&a.tuf(gun, "targets.json")).await.1), v);
    }
    wait_for_lease(&a, true).await;
    wait_for_lease(&b, true).await;
    let (st, _) = a
        .post_parts(gun, &[("targets", &repo.targets_file(5, &[("t", b"5")]))])
        .await;
    assert_eq!(st, 200);
    assert_eq!(version_of(&b.get(&b.tuf(gun, "timestamp.json")).await.1), 5);
    assert!(
        b.log()
            .contains("announcement listener lost its connection")
            || b.log().contains("announcement listener failed"),
        "{}",
        b.log()
    );
}
