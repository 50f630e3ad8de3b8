//! Three notary-server instances and two signers behind a real load balancer (Debian's
//! HAProxy, TLS passed through, health-checked on `/_notary_server/health`), under a steady
//! stream of publishes and reads while faults are injected: an instance `kill -9`ed and
//! restarted, an instance cut off the network (from the balancer and from the database) and
//! reconnected, another one silently partitioned from the database (packets dropped,
//! connections hang) and healed, a signer killed and restarted. Clients retry what the balancer cannot hide (a
//! connection that dies mid-request) and must see every acknowledged publish, never an older
//! version than one they already saw, and a consistent repository at the end.
#![cfg(feature = "system-tests")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn start_haproxy(dir: &std::path::Path, port: u16, backends: &[u16]) -> Haproxy {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server notary{i} 127.0.0.1:{p} check\n"))
        .collect();
    Haproxy::start(
        dir,
        &format!(
            "global\n  maxconn 2000\ndefaults\n  mode tcp\n  timeout connect 500ms\n  timeout client 30s\n  timeout server 30s\n  retries 3\n  option redispatch\n\
             frontend notary\n  bind 127.0.0.1:{port}\n  default_backend servers\n\
             backend servers\n  balance roundrobin\n  option httpchk GET /_notary_server/health\n  default-server inter 300ms fall 2 rise 2 check-ssl verify none\n{servers}"
        ),
    )
}

/// GET through the balancer, retrying connection failures and 5xx for up to 10 s.
async fn get(http: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http.get(url).send().await {
            Ok(r) if r.status().as_u16() < 500 => {
                let st = r.status().as_u16();
                if let Ok(b) = r.bytes().await {
                    return (st, b.to_vec());
                }
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "GET {url} kept failing through the balancer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_behind_haproxy_survive_kills_and_cuts() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("tls")).unwrap();
    let keys = create_pg_db().await;
    let mut signers = [
        SignerProc::start(false, Some(&keys), &tls).await,
        SignerProc::start(false, Some(&keys), &tls).await,
    ];
    let mut trust = signers[0].trust_service();
    trust["addresses"] = serde_json::json!([format!("127.0.0.1:{}", signers[1].port)]);
    trust["timeout_ms"] = serde_json::json!(2000);
    let db = create_pg_db().await;
    let pg = host_port(&db);

    // Each instance reaches the database through its own path, and the balancer reaches it
    // through another: cutting both isolates the instance as a network partition would.
    let mut servers = Vec::new();
    let (mut db_paths, mut lb_paths) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let db_path = Proxy::new(pg.clone());
        db_path.start().await;
        // A short statement timeout: a silent partition must fail requests in seconds.
        let cfg =
            serde_json::json!({"trust_service": trust, "storage": {"statement_timeout_ms": 2000}});
        let s = Server::start_with_tls(&db_path.url(&db), cfg, Some(&tls)).await;
        let lb_path = Proxy::new(format!("127.0.0.1:{}", s.port));
        lb_path.start().await;
        servers.push(s);
        db_paths.push(db_path);
        lb_paths.push(lb_path);
    }
    let lb_port = free_port();
    let _haproxy = start_haproxy(
        tmp.path(),
        lb_port,
        &lb_paths.iter().map(|p| p.port).collect::<Vec<_>>(),
    );
    let lb = format!("https://127.0.0.1:{lb_port}");
    let cert = reqwest::Certificate::from_pem(&std::fs::read(&tls.ca).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(cert)
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let tuf = {
        let lb = lb.clone();
        move |gun: &str, f: &str| format!("{lb}/v2/{gun}/_trust/tuf/{f}")
    };
    eventually(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || match http.get(format!("{lb}/_notary_server/health")).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            _ => Err(format!(
                "the balancer never became ready:\n{}",
                std::fs::read_to_string(tmp.path().join("haproxy.log")).unwrap_or_default()
            )),
        },
    )
    .await;

    let gun = "example.com/lb/repo";
    let repo = Arc::new(init_repo(&servers[0], gun).await);
    let acked = Arc::new(AtomicI64::new(1));
    let done = Arc::new(AtomicBool::new(false));
    let (retries, reads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    // Publisher: sequential versions; an attempt whose outcome is unknown (connection lost) is
    // resolved by reading what the repository holds before trying again.
    let publisher = {
        let (http, repo, acked, done, retries) = (
            http.clone(),
            repo.clone(),
            acked.clone(),
            done.clone(),
            retries.clone(),
        );
        let (url, tuf) = (format!("{lb}/v2/{gun}/_trust/tuf/"), tuf.clone());
        tokio::spawn(async move {
            let (mut sent, mut unknown_stored) = (Vec::new(), 0usize);
            let mut v = 2;
            while !done.load(Ordering::SeqCst) {
                let file = repo.targets_file(v, &[("t", format!("v{v}").as_bytes())]);
                let (ct, body) = multipart(&[("targets", &file)]);
                let ok = match http
                    .post(&url)
                    .header("content-type", ct)
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => true,
                    // 503: signer or database unreachable from that instance (retryable); or the
                    // connection was lost. Either way the publish may have landed: look first.
                    Ok(r) if r.status().as_u16() == 503 => {
                        let (st, stored) =
                            get(&http, &tuf(gun, &format!("{v}.targets.json"))).await;
                        st == 200 && stored == file && {
                            unknown_stored += 1;
                            true
                        }
                    }
                    Ok(r) => {
                        return Err(format!(
                            "publish v{v}: {} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        ))
                    }
                    Err(_) => {
                        let (st, stored) =
                            get(&http, &tuf(gun, &format!("{v}.targets.json"))).await;
                        if st == 200 {
                            assert_eq!(stored, file, "v{v} stored with other content");
                            unknown_stored += 1;
                        }
                        st == 200
                    }
                };
                if ok {
                    sent.push((v, file));
                    acked.store(v, Ordering::SeqCst);
                    v += 1;
                } else {
                    retries.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ok((sent, unknown_stored))
        })
    };
    // Readers: a read that starts after a publish was acknowledged serves it or newer, and a
    // reader never sees versions go back — whichever instance answers.
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (http, acked, done, reads) = (http.clone(), acked.clone(), done.clone(), reads.clone());
        let url = tuf(gun, "targets.json");
        readers.push(tokio::spawn(async move {
            let mut last = 0;
            while !done.load(Ordering::SeqCst) {
                let floor = acked.load(Ordering::SeqCst);
                let (st, body) = get(&http, &url).await;
                assert_eq!(st, 200);
                let v = version_of(&body);
                assert!(
                    v >= floor,
                    "served targets v{v} after v{floor} was acknowledged"
                );
                assert!(v >= last, "a reader went back from v{last} to v{v}");
                last = v;
                reads.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    let pause = || tokio::time::sleep(Duration::from_millis(1500));
    pause().await;
    // 1. kill -9 an instance, then bring it back.
    servers[0].stop();
    pause().await;
    let s0 = servers.remove(0).restart().await;
    servers.insert(0, s0);
    pause().await;
    // 2. Cut an instance off the network (balancer side and database side), then reconnect it.
    lb_paths[1].stop().await;
    db_paths[1].stop().await;
    pause().await;
    db_paths[1].start().await;
    lb_paths[1].start().await;
    pause().await;
    // 3. A silent partition between another instance and the database (packets dropped, no
    //    reset): its queries hang rather than fail, so it must give up on its own (client-side
    //    timeout), answer 503 and fail its health check; then the partition heals.
    db_paths[2].blackhole();
    pause().await;
    pause().await;
    pause().await;
    db_paths[2].stop().await;
    db_paths[2].start().await;
    pause().await;
    // 4. kill -9 a signer, then restart it; then the other one.
    signers[0].stop();
    pause().await;
    signers[0].restart().await;
    signers[1].stop();
    pause().await;
    signers[1].restart().await;
    pause().await;

    done.store(true, Ordering::SeqCst);
    let (sent, unknown_stored) = publisher.await.unwrap().unwrap_or_else(|e| {
        let errors: String = servers
            .iter()
            .flat_map(|s| {
                s.log()
                    .lines()
                    .filter(|l| l.contains("ERROR") || l.contains("WARN"))
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .join("\n");
        panic!("{e}\nserver errors and warnings:\n{errors}")
    });
    for r in readers {
        r.await.unwrap();
    }
    assert!(
        sent.len() >= 10,
        "only {} publishes went through",
        sent.len()
    );

    // Every acknowledged publish is there, through every instance, and the chain is whole.
    for s in &servers {
        for (v, file) in &sent {
            let (st, stored) = s.get(&s.tuf(gun, &format!("{v}.targets.json"))).await;
            assert_eq!((st, &stored), (200, file), "targets v{v} on {}", s.url);
        }
    }
    let newest = sent.last().unwrap().0;
    let (_, t) = get(&http, &tuf(gun, "targets.json")).await;
    assert_eq!(version_of(&t), newest);
    assert_chain_whole(&servers[0], gun, newest).await;
    report_figures(
        "load_balanced",
        &format!(
            "3 instances + 2 signers behind HAProxy; 1 instance kill -9, 1 instance cut, 1 silent partition, 2 signer kills: {} publishes acknowledged and present on every instance ({unknown_stored} confirmed after a lost connection), {} retried attempts, {} reads, 0 stale or rolled-back reads",
            sent.len(),
            retries.load(Ordering::SeqCst),
            reads.load(Ordering::SeqCst)
        ),
    );
}
