//! A real Patroni cluster under load (issue 20): three Postgres nodes managed by Debian's Patroni
//! with etcd, synchronous replication on, and HAProxy routing writes to the leader and reads to
//! the replicas on Patroni's REST health checks — the layout Patroni documents. On it: a
//! read-write instance through HAProxy, a read-write instance given every host
//! (`target_session_attrs=read-write`), a read-only instance (`server.read_only`) on the
//! replicas, and two signers whose SQL key store is on the same cluster; continuous publishes
//! (alternating between the two writers) and readers on every instance.
//!
//! Three faults, one after the other: the leader's Postgres `kill -9`ed (Patroni restarts it),
//! the leader's Patroni and Postgres `kill -9`ed (a replica is promoted; the old leader's
//! Patroni is started again and must rejoin as a replica), and a planned `patronictl
//! switchover`. Each time: clients get 503 during the gap (never 500, never a hang), publishes
//! resume without restarting anything, read leases are taken again, and the outage (first failed
//! to first successful publish) stays within a few seconds of Patroni's own (from the fault until
//! a node accepts writes). At the end every acknowledged publish is present byte for byte on
//! every instance, and no reader ever saw a version go back or older than one acknowledged.
#![cfg(feature = "system-tests")]

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Patroni's timings: the leader lock lives 10 s; the loop runs every second.
const TTL_S: u64 = 10;

/// Our outage may exceed Patroni's by this much: HAProxy's checks (every 500 ms, down after two)
/// and the host-list re-pick, plus one publish attempt.
const SLACK: Duration = Duration::from_secs(5);

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

struct Node {
    name: String,
    pg_port: u16,
    rest_port: u16,
    config: PathBuf,
    data: PathBuf,
    patroni: Option<Child>,
}

/// etcd, three Patroni nodes and HAProxy in a folder of their own; everything is killed and
/// removed on drop.
struct Patroni {
    nodes: Vec<Node>,
    etcd: Child,
    haproxy: Option<Haproxy>,
    write_port: u16,
    read_port: u16,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Member {
    name: String,
    role: String,
    state: String,
    #[serde(default)]
    timeline: Option<i64>,
}

impl Patroni {
    async fn start() -> Patroni {
        let dir = tempfile::Builder::new()
            .prefix("notary-rs-patroni.")
            .tempdir_in("/tmp")
            .unwrap();
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let d = dir.path();
        let (etcd_port, peer_port) = (free_port(), free_port());
        let log = std::fs::File::create(d.join("etcd.log")).unwrap();
        let etcd = Command::new("etcd")
            .args(["--name", "e", "--data-dir"])
            .arg(d.join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!("--initial-cluster=e=http://127.0.0.1:{peer_port}"))
            .uid(uid)
            .gid(gid)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("etcd (apt-get install etcd-server)");
        eventually(
            Duration::from_secs(30),
            Duration::from_millis(100),
            async || {
                std::net::TcpStream::connect(("127.0.0.1", etcd_port))
                    .map(drop)
                    .map_err(|e| format!("etcd does not listen: {e}"))
            },
        )
        .await;

        let bin = pg_bin();
        let nodes: Vec<Node> = (1..=3)
            .map(|i| {
                let (pg_port, rest_port) = (free_port(), free_port());
                let name = format!("node{i}");
                let data = d.join(format!("data{i}"));
                let config = d.join(format!("{name}.yml"));
                std::fs::write(
                    &config,
                    format!(
                        "scope: notary\nname: {name}\n\
                         restapi:\n  listen: 127.0.0.1:{rest_port}\n  connect_address: 127.0.0.1:{rest_port}\n\
                         etcd3:\n  hosts: 127.0.0.1:{etcd_port}\n\
                         bootstrap:\n  dcs:\n    ttl: {TTL_S}\n    loop_wait: 1\n    retry_timeout: 3\n    maximum_lag_on_failover: 1048576\n    synchronous_mode: true\n\
                         \x20   postgresql:\n      use_pg_rewind: true\n      use_slots: true\n      parameters:\n        wal_log_hints: 'on'\n        max_connections: 200\n        fsync: 'off'\n\
                         \x20 initdb:\n  - encoding: UTF8\n\
                         \x20 pg_hba:\n  - local all all trust\n  - host all all 127.0.0.1/32 trust\n  - host replication all 127.0.0.1/32 trust\n\
                         postgresql:\n  listen: 127.0.0.1:{pg_port}\n  connect_address: 127.0.0.1:{pg_port}\n  data_dir: {data}\n  bin_dir: {bin}\n  pgpass: {d}/pgpass{i}\n\
                         \x20 authentication:\n    superuser: {{username: postgres, password: unused}}\n    replication: {{username: replicator, password: unused}}\n    rewind: {{username: postgres, password: unused}}\n\
                         \x20 parameters:\n    unix_socket_directories: '{d}'\n",
                        data = data.display(),
                        bin = bin.display(),
                        d = d.display(),
                    ),
                )
                .unwrap();
                std::os::unix::fs::chown(&config, Some(uid), Some(gid)).unwrap();
                Node {
                    name,
                    pg_port,
                    rest_port,
                    config,
                    data,
                    patroni: None,
                }
            })
            .collect();
        let (write_port, read_port) = (free_port(), free_port());
        let mut p = Patroni {
            nodes,
            etcd,
            haproxy: None,
            write_port,
            read_port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
            dir,
        };
        for i in 0..3 {
            p.start_patroni(i);
        }
        // The balancer as Patroni documents it: writes to the node whose `/primary` check
        // answers 200, reads to those whose `/replica` does; sessions on a node marked down
        // are cut.
        let servers = |check: &str| -> String {
            p.nodes
                .iter()
                .map(|n| {
                    format!(
                        "  server {} 127.0.0.1:{} maxconn 300 check port {}\n",
                        n.name, n.pg_port, n.rest_port
                    )
                })
                .fold(
                    format!(
                        "  option httpchk OPTIONS /{check}\n  http-check expect status 200\n  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions\n"
                    ),
                    |acc, s| acc + &s,
                )
        };
        let cfg = format!(
            "global\n  maxconn 2000\ndefaults\n  mode tcp\n  retries 2\n  timeout connect 1s\n  timeout client 30m\n  timeout server 30m\n  timeout check 1s\n\
             listen primary\n  bind 127.0.0.1:{write_port}\n{}\
             listen replicas\n  bind 127.0.0.1:{read_port}\n  balance roundrobin\n{}",
            servers("primary"),
            servers("replica"),
        );
        p.haproxy = Some(Haproxy::start(p.dir.path(), &cfg));
        p.wait_healthy(Duration::from_secs(120)).await;
        p
    }

    fn start_patroni(&mut self, i: usize) {
        let (uid, gid) = postgres_ids();
        let n = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", n.name)))
            .unwrap();
        n.patroni = Some(
            Command::new("patroni")
                .arg(&n.config)
                .current_dir(self.dir.path())
                .env("HOME", self.dir.path())
                .uid(uid)
                .gid(gid)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("patroni (apt-get install patroni)"),
        );
    }

    fn kill_patroni(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].patroni.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `kill -9` the node's postmaster (its backends exit with it).
    fn kill_postgres(&self, i: usize) {
        let pid = std::fs::read_to_string(self.nodes[i].data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
            .expect("the node's postmaster.pid");
        let _ = Command::new("kill").args(["-9", &pid]).status();
    }

    /// The cluster as Patroni's REST API tells it (from any node that answers).
    async fn members(&self) -> Option<Vec<Member>> {
        #[derive(serde::Deserialize)]
        struct ClusterView {
            members: Vec<Member>,
        }
        for n in &self.nodes {
            let url = format!("http://127.0.0.1:{}/cluster", n.rest_port);
            if let Ok(r) = self.http.get(url).send().await {
                if let Ok(c) = r.json::<ClusterView>().await {
                    return Some(c.members);
                }
            }
        }
        None
    }

    fn index(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap()
    }

    /// A running leader, a running synchronous standby and a third running replica, all on the
    /// leader's timeline: (leader, sync standby).
    async fn wait_healthy(&self, within: Duration) -> (usize, usize) {
        eventually(within, Duration::from_millis(250), async || {
            let members = self.members().await.unwrap_or_default();
            let leader = members
                .iter()
                .find(|m| m.role == "leader" && m.state == "running");
            let sync = members
                .iter()
                .find(|m| m.role == "sync_standby" && m.state == "running");
            if let (Some(l), Some(s)) = (leader, sync) {
                if members.len() == 3
                    && members
                        .iter()
                        .all(|m| m.state == "running" && m.timeline == l.timeline)
                {
                    return Ok((self.index(&l.name), self.index(&s.name)));
                }
            }
            Err(format!(
                "the Patroni cluster did not become healthy: {members:?}\n{}",
                self.logs()
            ))
        })
        .await
    }

    /// The node whose Postgres accepts writes now, asked directly.
    async fn writable(&self) -> Option<usize> {
        use sqlx::Connection;
        for (i, n) in self.nodes.iter().enumerate() {
            let url = format!("postgres://postgres@127.0.0.1:{}/postgres", n.pg_port);
            let probe = async {
                let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
                let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut c)
                    .await
                    .ok()?;
                Some(!recovering)
            };
            if let Ok(Some(true)) = tokio::time::timeout(Duration::from_millis(500), probe).await {
                return Some(i);
            }
        }
        None
    }

    /// Start `patronictl switchover` (it returns once the candidate leads).
    fn switchover(&self, from: usize, to: usize) -> Child {
        Command::new("patronictl")
            .arg("-c")
            .arg(&self.nodes[0].config)
            .args([
                "switchover",
                "--leader",
                &self.nodes[from].name,
                "--candidate",
                &self.nodes[to].name,
                "--force",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("patronictl")
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", n.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "--- {} (last lines)\n{}",
                    n.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn url(&self, port: u16, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{db}")
    }

    /// Every host, as libpq takes them, for a writer.
    fn host_list(&self, db: &str) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.pg_port))
            .collect();
        format!(
            "postgres://postgres@{}/{db}?target_session_attrs=read-write",
            hosts.join(",")
        )
    }
}

impl Drop for Patroni {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_patroni(i);
        }
        for n in &self.nodes {
            if n.data.join("postmaster.pid").exists() {
                let _ = Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(pg_bin().join("pg_ctl"))
                    .arg("-D")
                    .arg(&n.data)
                    .args(["-m", "immediate", "stop"])
                    .output();
            }
        }
        self.haproxy = None;
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}

/// One publish attempt: when it started and ended, and whether it was acknowledged.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    start: Instant,
    /// When the publish was answered (before any reading back).
    answered: Instant,
    ok: bool,
}

/// What the load saw, shared by its tasks.
#[derive(Default)]
struct Seen {
    attempts: Mutex<Vec<Attempt>>,
    /// Reads answered 200 / 503.
    reads: Mutex<(usize, usize)>,
    /// Why a load task stopped early.
    errors: Mutex<Vec<String>>,
}

impl Seen {
    fn fail(&self, e: String) -> String {
        self.errors.lock().unwrap().push(e.clone());
        e
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    KillPostgres,
    KillPatroniAndPostgres,
    Switchover,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishes_and_reads_survive_patroni_fail_overs() {
    let cluster = Patroni::start().await;
    let mut cluster = cluster;
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&cluster.url(cluster.write_port, "postgres"))
            .await
            .unwrap();
        for db in ["notary", "keys"] {
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("tls")).unwrap();
    let keys = cluster.url(cluster.write_port, "keys");
    let signers = [
        SignerProc::start(false, Some(&keys), &tls).await,
        SignerProc::start(false, Some(&keys), &tls).await,
    ];
    let mut trust = signers[0].trust_service();
    trust["addresses"] = serde_json::json!([format!("127.0.0.1:{}", signers[1].port)]);
    trust["timeout_ms"] = serde_json::json!(2000);
    let cfg = |extra: serde_json::Value| {
        let mut c =
            serde_json::json!({"trust_service": trust, "storage": {"statement_timeout_ms": 2000}});
        merge(&mut c, extra);
        c
    };
    // Writers: one through HAProxy, one given every host. The reader: on the replicas.
    let through_haproxy = Server::start_with_tls(
        &cluster.url(cluster.write_port, "notary"),
        cfg(serde_json::json!({})),
        Some(&tls),
    )
    .await;
    let given_hosts = Server::start_with_tls(
        &cluster.host_list("notary"),
        cfg(serde_json::json!({})),
        Some(&tls),
    )
    .await;
    let reader = Server::start_with_tls(
        &cluster.url(cluster.read_port, "notary"),
        cfg(serde_json::json!({"server": {"read_only": true}})),
        Some(&tls),
    )
    .await;
    let writers = Arc::new([through_haproxy, given_hosts]);

    let gun = "example.com/patroni/repo";
    let repo = Arc::new(init_repo(&writers[0], gun).await);
    let acked = Arc::new(AtomicI64::new(1));
    let ts_floor = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let deadline = Duration::from_secs(15);

    // The publisher: sequential versions, alternating between the writers. A 503 may or may not
    // have landed: it is resolved by reading the version back before going on.
    let publisher = {
        let (writers, repo, acked, ts_floor, done, seen) = (
            writers.clone(),
            repo.clone(),
            acked.clone(),
            ts_floor.clone(),
            done.clone(),
            seen.clone(),
        );
        tokio::spawn(async move {
            let record = seen.clone();
            let r = async move {
                let mut sent = Vec::new();
                let mut v = 2;
                while !done.load(Ordering::SeqCst) {
                    let s = &writers[v as usize % 2];
                    let file = repo.targets_file(v, &[("t", format!("v{v}").as_bytes())]);
                    let (ct, body) = multipart(&[("targets", &file)]);
                    let start = Instant::now();
                    let r = s
                        .http
                        .post(s.tuf(gun, ""))
                        .header("content-type", ct)
                        .body(body)
                        .timeout(deadline)
                        .send()
                        .await
                        .map_err(|e| {
                            format!(
                                "publish v{v} on {}: no answer within {deadline:?}: {e}",
                                s.url
                            )
                        })?;
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    let answered = Instant::now();
                    let mut ok = match status {
                        200 => true,
                        503 => false,
                        _ => return Err(format!("publish v{v} on {}: {status} {text}", s.url)),
                    };
                    if !ok {
                        // Landed or not? Ask until the database answers.
                        let until = Instant::now() + Duration::from_secs(60);
                        loop {
                            let (st, stored) =
                                s.get(&s.tuf(gun, &format!("{v}.targets.json"))).await;
                            match st {
                                200 => {
                                    if stored != file {
                                        return Err(format!("v{v} stored with other content"));
                                    }
                                    ok = true;
                                    break;
                                }
                                404 => break,
                                503 if Instant::now() < until => {
                                    tokio::time::sleep(Duration::from_millis(100)).await
                                }
                                st => {
                                    return Err(format!(
                                        "reading back v{v} on {}: {st} {}",
                                        s.url,
                                        String::from_utf8_lossy(&stored)
                                    ))
                                }
                            }
                        }
                    }
                    seen.attempts.lock().unwrap().push(Attempt {
                        start,
                        answered,
                        ok: status == 200,
                    });
                    if ok {
                        acked.store(v, Ordering::SeqCst);
                        sent.push((v, file));
                        v += 1;
                        if status == 200 {
                            let (st, ts) = s.get(&s.tuf(gun, "timestamp.json")).await;
                            if st == 200 {
                                ts_floor.fetch_max(version_of(&ts), Ordering::SeqCst);
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok::<_, String>(sent)
            }
            .await;
            if let Err(e) = &r {
                record.fail(e.clone());
            }
            r
        })
    };

    // Readers, one per instance, alternating targets.json and timestamp.json: never 500, never
    // a hang; on the writers never older than acknowledged; nowhere a version going back.
    let reader = Arc::new(reader);
    let mut readers = Vec::new();
    for i in 0..3 {
        let (writers, reader, acked, ts_floor, done, seen) = (
            writers.clone(),
            reader.clone(),
            acked.clone(),
            ts_floor.clone(),
            done.clone(),
            seen.clone(),
        );
        readers.push(tokio::spawn(async move {
            let record = seen.clone();
            let r = async move {
                let s: &Server = if i < 2 { &writers[i] } else { &reader };
                let current = i < 2;
                let mut last = [0i64; 2];
                while !done.load(Ordering::SeqCst) {
                    for (k, role) in ["targets", "timestamp"].into_iter().enumerate() {
                        let floor = if k == 0 {
                            acked.load(Ordering::SeqCst)
                        } else {
                            ts_floor.load(Ordering::SeqCst)
                        };
                        let r = s
                            .http
                            .get(s.tuf(gun, &format!("{role}.json")))
                            .timeout(deadline)
                            .send()
                            .await
                            .map_err(|e| format!("GET {role}.json on {}: no answer: {e}", s.url))?;
                        let st = r.status().as_u16();
                        let body = r.bytes().await.unwrap_or_default();
                        match st {
                            200 => {
                                let v = version_of(&body);
                                if current && v < floor {
                                    return Err(format!(
                                        "{} served {role} v{v} after v{floor} was acknowledged",
                                        s.url
                                    ));
                                }
                                if v < last[k] {
                                    return Err(format!(
                                        "{}: {role} went back from v{} to v{v}",
                                        s.url, last[k]
                                    ));
                                }
                                last[k] = v;
                                seen.reads.lock().unwrap().0 += 1;
                            }
                            503 => seen.reads.lock().unwrap().1 += 1,
                            // The read-only instance's replicas may not have the new repository
                            // yet when the load starts; once it served it, never again.
                            404 if !current && last == [0, 0] => {}
                            st => {
                                return Err(format!(
                                    "GET {role}.json on {}: {st} {}",
                                    s.url,
                                    String::from_utf8_lossy(&body)
                                ))
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                Ok::<_, String>(())
            }
            .await;
            if let Err(e) = &r {
                record.fail(e.clone());
            }
            r
        }));
    }

    let mut figures = Vec::new();
    for fault in [
        Fault::KillPostgres,
        Fault::KillPatroniAndPostgres,
        Fault::Switchover,
    ] {
        let (leader, sync) = cluster.wait_healthy(Duration::from_secs(90)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let failed = |cluster: &Patroni, what: String| -> String {
            format!(
                "{fault:?}: {what}\nload errors: {:?}\n{}\nserver logs:\n{}",
                seen.errors.lock().unwrap(),
                cluster.logs(),
                writers
                    .iter()
                    .map(|s| s.log())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        };
        assert!(
            !publisher.is_finished(),
            "{}",
            failed(&cluster, "the publisher stopped".into())
        );
        let t0 = Instant::now();
        let mut switchover = None;
        match fault {
            Fault::KillPostgres => cluster.kill_postgres(leader),
            Fault::KillPatroniAndPostgres => {
                cluster.kill_patroni(leader);
                cluster.kill_postgres(leader);
            }
            Fault::Switchover => switchover = Some(cluster.switchover(leader, sync)),
        }
        // Patroni's own time: from the fault until a node accepts writes again, after none did
        // (zero if no probe found none: a gap shorter than the probes).
        let mut down_seen = false;
        let mut fault_over = Instant::now();
        let patroni_time = loop {
            if let Some(c) = switchover.as_mut() {
                if c.try_wait().unwrap().is_some() {
                    let out = switchover.take().unwrap().wait_with_output().unwrap();
                    assert!(
                        out.status.success(),
                        "patronictl switchover: {}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                fault_over = Instant::now();
            }
            match cluster.writable().await {
                None => down_seen = true,
                Some(_) if down_seen => break t0.elapsed(),
                Some(_) if fault_over.elapsed() > Duration::from_secs(3) => break Duration::ZERO,
                Some(_) => {}
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{}",
                failed(&cluster, "no node accepted writes within 60 s".into())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if let Some(c) = switchover {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "patronictl switchover failed");
        }
        if let Fault::KillPatroniAndPostgres = fault {
            // The old leader's Patroni comes back; the node must rejoin as a replica.
            cluster.start_patroni(leader);
        }
        let (new_leader, _) = cluster.wait_healthy(Duration::from_secs(120)).await;
        if !matches!(fault, Fault::KillPostgres) {
            assert_ne!(new_leader, leader, "{fault:?}: the leader did not change");
        }
        // Publishes resume on both writers without a restart: wait for one success on each
        // after the cluster is whole again.
        let resumed = Instant::now();
        loop {
            let attempts = seen.attempts.lock().unwrap().clone();
            let oks = attempts
                .iter()
                .filter(|a| a.ok && a.start > resumed)
                .count();
            if oks >= 2 {
                break;
            }
            assert!(
                resumed.elapsed() < Duration::from_secs(60) && !publisher.is_finished(),
                "{}",
                failed(&cluster, "publishes did not resume".into())
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Read leases are taken again on both writers.
        for s in writers.iter() {
            eventually(
                Duration::from_secs(30),
                Duration::from_millis(200),
                async || {
                    let (_, m) = s.get(&format!("{}/metrics", s.url)).await;
                    match metric_sample(&String::from_utf8_lossy(&m), "notary_rs_read_lease") {
                        Some("1") => Ok(()),
                        _ => Err(failed(
                            &cluster,
                            format!("{} took no read lease again", s.url),
                        )),
                    }
                },
            )
            .await;
        }
        // The outage: from the first attempt failed by the fault to the first success after it.
        let attempts = seen.attempts.lock().unwrap().clone();
        let after: Vec<&Attempt> = attempts.iter().filter(|a| a.answered >= t0).collect();
        let outage = match after.iter().position(|a| !a.ok) {
            None => Duration::ZERO,
            Some(first_failed) => {
                let back = after[first_failed..]
                    .iter()
                    .find(|a| a.ok)
                    .expect("a success after the outage");
                back.answered.duration_since(after[first_failed].start)
            }
        };
        let refused = after.iter().filter(|a| !a.ok).count();
        let slowest = after
            .iter()
            .map(|a| a.answered.duration_since(a.start))
            .max()
            .unwrap_or_default();
        assert!(
            outage <= patroni_time + SLACK,
            "{}",
            failed(
                &cluster,
                format!("outage {outage:?} against Patroni's {patroni_time:?}")
            )
        );
        figures.push(format!(
            "{fault:?}: outage {:.1} s vs Patroni {:.1} s, {refused} publishes refused (503), slowest answer {:.1} s",
            outage.as_secs_f64(),
            patroni_time.as_secs_f64(),
            slowest.as_secs_f64()
        ));
    }

    done.store(true, Ordering::SeqCst);
    let sent = publisher
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    for r in readers {
        r.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(sent.len() >= 10, "only {} publishes", sent.len());

    // Every acknowledged publish, byte for byte, on every instance (the reader once it has
    // replayed the last one), and the chain whole.
    let newest = sent.last().unwrap().0;
    eventually(
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || {
            let v = version_of(&reader.get(&reader.tuf(gun, "targets.json")).await.1);
            (v >= newest).then_some(()).ok_or(format!(
                "the read-only instance never caught up: v{v} < v{newest}"
            ))
        },
    )
    .await;
    for s in writers.iter().chain([&*reader]) {
        for (v, file) in &sent {
            let (st, stored) = s.get(&s.tuf(gun, &format!("{v}.targets.json"))).await;
            assert_eq!((st, &stored), (200, file), "targets v{v} on {}", s.url);
        }
    }
    assert_chain_whole(&writers[0], gun, newest).await;
    let (ok_reads, unavailable_reads) = *seen.reads.lock().unwrap();
    report_figures(
        "patroni",
        &format!(
            "3 Postgres under Patroni + etcd (synchronous mode, ttl {TTL_S} s), HAProxy on the REST checks, 2 writers (HAProxy / host list) + 1 read-only + 2 signers: {}; {} publishes acknowledged and present everywhere, {ok_reads} reads (+{unavailable_reads} answered 503), 0 stale or rolled-back reads, 0 answers 500",
            figures.join("; "),
            sent.len()
        ),
    );
    drop(signers);
    cluster.haproxy = None;
}
