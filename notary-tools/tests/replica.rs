//! Multi-region reads: a read-write instance on a primary Postgres, a read-only instance
//! (`server.read_only`) on a streaming replica. The read-only instance refuses writes, follows
//! the primary's publishes through replication, and never serves older metadata than it already
//! served — even when its database fails over to a replica that is behind.
#![cfg(feature = "system-tests")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A Postgres cluster of this test's own, stopped on drop.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn start(dir: &Path, port: u16) -> Cluster {
        let bin = pg_bin();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c hot_standby=on",
            dir.display()
        );
        as_postgres(&[
            bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            dir.join("data").to_str().unwrap(),
            "-l",
            dir.join("log").to_str().unwrap(),
            "-w",
            "-o",
            &opts,
            "start",
        ]);
        Cluster {
            dir: dir.to_path_buf(),
            port,
        }
    }

    fn primary(dir: &Path) -> Cluster {
        std::fs::create_dir_all(dir).unwrap();
        Command::new("chown")
            .args(["postgres", dir.to_str().unwrap()])
            .status()
            .unwrap();
        as_postgres(&[
            pg_bin().join("initdb").to_str().unwrap(),
            "-D",
            dir.join("data").to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
        ]);
        Cluster::start(dir, free_port())
    }

    /// A streaming replica of this cluster.
    fn replica(&self, dir: &Path) -> Cluster {
        std::fs::create_dir_all(dir).unwrap();
        Command::new("chown")
            .args(["postgres", dir.to_str().unwrap()])
            .status()
            .unwrap();
        let port = self.port.to_string();
        as_postgres(&[
            pg_bin().join("pg_basebackup").to_str().unwrap(),
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-D",
            dir.join("data").to_str().unwrap(),
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
        ]);
        Cluster::start(dir, free_port())
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    async fn sql(&self, db: &str, q: &str) {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.url(db)).await.unwrap();
        sqlx::raw_sql(q).execute(&mut c).await.unwrap();
    }
}

impl Cluster {
    /// Stop at once (`kill -9`-like: no checkpoint, sessions cut).
    fn stop(&self) {
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                pg_bin().join("pg_ctl").to_str().unwrap(),
                "-D",
                self.dir.join("data").to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn targets_version(s: &Server, gun: &str) -> (u16, i64) {
    let (st, body) = s.get(&s.tuf(gun, "targets.json")).await;
    (st, if st == 200 { version_of(&body) } else { 0 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_instance_on_a_replica_serves_monotonic_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = Cluster::primary(&tmp.path().join("primary"));
    primary.sql("postgres", "CREATE DATABASE notary").await;
    let writer = Server::start_with_db(&primary.url("notary")).await; // migrates the schema
    let gun = "example.com/region/repo";
    let repo = init_repo(&writer, gun).await;

    let replica1 = primary.replica(&tmp.path().join("replica1"));
    let replica2 = primary.replica(&tmp.path().join("replica2"));
    replica2
        .sql("postgres", "SELECT pg_wal_replay_pause()")
        .await; // replica2 stays at v1

    // The read-only instance reaches its database through a path we can re-point (fail-over).
    let path = Proxy::new(format!("127.0.0.1:{}", replica1.port));
    path.start().await;
    let reader = Server::start_with_config(
        &path.url(&replica1.url("notary")),
        serde_json::json!({"server": {"read_only": true}}),
    )
    .await;
    assert_eq!(targets_version(&reader, gun).await, (200, 1));

    // Writes are refused with a clear error; nothing changes.
    let (st, body) = reader
        .post_parts(gun, &[("targets", &repo.targets_file(2, &[("x", b"x")]))])
        .await;
    assert_eq!(
        (st, api_error(&body).0.as_str()),
        (405, "UNSUPPORTED"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        reader
            .http
            .delete(reader.tuf(gun, ""))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    assert_eq!(
        reader
            .get(&reader.tuf("example.com/region/new", "timestamp.key"))
            .await
            .0,
        405
    );
    assert_eq!(
        reader
            .get(&format!("{}/_notary_server/health", reader.url))
            .await
            .0,
        200
    );

    // Publishes through the primary reach the reader through replication.
    for v in 2..=5 {
        let (st, _) = writer.publish_version(&repo, v).await;
        assert_eq!(st, 200);
    }
    let mut served = 0;
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let (st, v) = targets_version(&reader, gun).await;
            assert_eq!(st, 200);
            assert!(v >= served, "went back from v{served} to v{v}");
            served = v;
            if served < 5 {
                return Err(format!("the replica has not delivered v5 (at v{served})"));
            }
            Ok(())
        },
    )
    .await;
    let (_, v5_bytes) = reader.get(&reader.tuf(gun, "5.targets.json")).await;

    // Fail-over to a replica that is behind (still at v1): the reader keeps serving v5 from its
    // cache and refuses (503) to load anything from the lagging database — never v1, never 404.
    path.stop().await;
    let failover = Proxy::with_port(path.port, format!("127.0.0.1:{}", replica2.port));
    failover.start().await;
    let until = Instant::now() + Duration::from_secs(3);
    let (mut from_cache, mut refused) = (0, 0);
    while Instant::now() < until {
        let (st, v) = targets_version(&reader, gun).await;
        match st {
            200 => {
                assert!(v >= 5, "served v{v} after v5");
                from_cache += 1;
            }
            503 => refused += 1,
            other => panic!("status {other} during the fail-over"),
        }
        let (st, body) = reader.get(&reader.tuf(gun, "5.targets.json")).await;
        assert!(
            st == 200 && body == v5_bytes || st == 503,
            "5.targets.json: {st}"
        );
        // Never read before (a cache miss): the lagging replica does not have it, but the reader
        // already served v5, so it must not say it does not exist.
        let (st, _) = reader.get(&reader.tuf(gun, "4.targets.json")).await;
        assert!(
            st == 200 || st == 503,
            "4.targets.json answered {st} after v5 was served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        from_cache > 0,
        "nothing was served during the fail-over ({refused} refused)"
    );
    assert!(
        reader
            .log()
            .contains("the database is behind what this instance already served"),
        "{}",
        reader.log()
    );

    // The lagging replica catches up; a new publish reaches the reader.
    replica2
        .sql("postgres", "SELECT pg_wal_replay_resume()")
        .await;
    let (st, _) = writer
        .post_parts(gun, &[("targets", &repo.targets_file(6, &[("t", b"six")]))])
        .await;
    assert_eq!(st, 200);
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || match targets_version(&reader, gun).await {
            (200, 6) => Ok(()),
            seen => Err(format!(
                "the reader never caught up after the replica did ({seen:?}):\n{}",
                reader.log()
            )),
        },
    )
    .await;
    failover.stop().await;
}

/// A fail-over as Patroni does it, seen from a writer: its database address first leads to a
/// node that is read-only (a standby, or the old primary restarting), then to the primary again
/// while the writer's pool still holds sessions on the read-only node. Publishes meanwhile are
/// 503 `UNAVAILABLE` — never 500 — and reads keep working; once the address leads to the primary,
/// the very next publish succeeds: the pool does not hand a writer the read-only node's sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_unavailable_and_left_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = Cluster::primary(&tmp.path().join("primary"));
    primary.sql("postgres", "CREATE DATABASE notary").await;
    let standby = primary.replica(&tmp.path().join("standby"));
    let path = Proxy::new(format!("127.0.0.1:{}", primary.port));
    path.start().await;
    let writer = Server::start_with_config(
        &path.url(&primary.url("notary")),
        serde_json::json!({"storage": {"max_connections": 4}}),
    )
    .await;
    let gun = "example.com/failover/repo";
    let repo = init_repo(&writer, gun).await;
    let publish = |v: i64| {
        let file = repo.targets_file(v, &[("t", &[v as u8])]);
        let writer = &writer;
        async move { writer.post_parts(gun, &[("targets", &file)]).await }
    };
    assert_eq!(publish(2).await.0, 200);

    // The address leads to the standby; every session is cut (the old primary went down).
    path.point_to(&format!("127.0.0.1:{}", standby.port));
    path.stop().await;
    path.start().await;
    for v in 3..=6 {
        let (st, body) = publish(v).await;
        assert_eq!(
            (st, api_error(&body).0.as_str()),
            (503, "UNAVAILABLE"),
            "publish v{v} on a read-only database: {}",
            String::from_utf8_lossy(&body)
        );
        let (st, _) = targets_version(&writer, gun).await;
        assert_eq!(st, 200, "a read on the standby");
    }
    assert!(
        writer.log().contains("database read-only"),
        "{}",
        writer.log()
    );

    // The address leads to the primary again, the standby's sessions still open in the pool.
    path.point_to(&format!("127.0.0.1:{}", primary.port));
    let (st, body) = publish(3).await;
    assert_eq!(
        st,
        200,
        "the first publish after the fail-over: {}\n{}",
        String::from_utf8_lossy(&body),
        writer.log()
    );
    assert_eq!(targets_version(&writer, gun).await, (200, 3));
    path.stop().await;
}

/// A writer given every host, as libpq takes them
/// (`postgres://…@standby,primary/notary?target_session_attrs=read-write`), as operators do
/// with Patroni and no balancer: it uses the primary although the standby is listed first, and
/// when the primary dies and the standby is promoted it moves there without a restart —
/// publishes meanwhile answer 503, never 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_given_every_host_follows_the_primary() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = Cluster::primary(&tmp.path().join("primary"));
    primary.sql("postgres", "CREATE DATABASE notary").await;
    let standby = primary.replica(&tmp.path().join("standby"));
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/notary?target_session_attrs=read-write",
        standby.port, primary.port
    );
    let writer = Server::start_with_db(&url).await;
    let gun = "example.com/hosts/repo";
    let repo = init_repo(&writer, gun).await;
    let publish = |v: i64| {
        let file = repo.targets_file(v, &[("t", &[v as u8])]);
        let writer = &writer;
        async move { writer.post_parts(gun, &[("targets", &file)]).await }
    };
    assert_eq!(publish(2).await.0, 200, "{}", writer.log());

    // The primary dies; the standby is promoted (what Patroni does on a fail-over).
    primary.stop();
    standby.sql("postgres", "SELECT pg_promote()").await;
    let failed_over = Instant::now();
    let mut refused = 0;
    eventually(
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || {
            let (st, body) = publish(3).await;
            match st {
                200 => Ok(()),
                503 => {
                    refused += 1;
                    Err(format!(
                        "never published on the promoted standby ({refused} refused):\n{}",
                        writer.log()
                    ))
                }
                other => panic!(
                    "status {other} during the fail-over: {}",
                    String::from_utf8_lossy(&body)
                ),
            }
        },
    )
    .await;
    report_figures(
        "replica",
        &format!(
            "host list fail-over: first publish on the promoted standby {} ms after the promotion, {refused} publishes refused (503) before",
            failed_over.elapsed().as_millis()
        ),
    );
    assert_eq!(targets_version(&writer, gun).await, (200, 3));
    assert!(
        writer.log().contains("the database host changed"),
        "{}",
        writer.log()
    );
}
