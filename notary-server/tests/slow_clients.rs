//! Slow and idle clients hold nothing for long: uploads that trickle in end with 408 after the
//! upload timeout (state unchanged), connections that never speak are closed, and meanwhile
//! every other client is served at once.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_uploads_and_idle_connections_do_not_exhaust_the_server() {
    let s = Server::start_with_config(&create_pg_db().await, serde_json::json!({"server": {"upload_timeout_seconds": 2}})).await;
    let gun = "example.com/slow/repo";
    let repo = init_repo(&s, gun).await;
    let before = s.snapshot_of_state(gun).await;

    // 500 connections that never send a byte.
    let idle: Vec<std::net::TcpStream> = (0..500).map(|_| std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap()).collect();

    // 20 publishes whose bodies trickle in (a byte every 100 ms, never complete in time).
    let targets = repo.targets_file(2, &[("slow", b"slow")]);
    let (ct, body) = notary_bench::repo::multipart(&[("targets", &targets)]);
    let mut slow = Vec::new();
    for _ in 0..20 {
        let (http, url, ct, body) = (s.http.clone(), s.tuf(gun, ""), ct.clone(), body.clone());
        slow.push(tokio::spawn(async move {
            let t = Instant::now();
            let stream = futures_util::stream::unfold(0usize, move |i| {
                let body = body.clone();
                async move {
                    if i >= body.len() {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok::<_, std::io::Error>(vec![body[i]]), i + 1))
                }
            });
            let r = http.post(url).header("content-type", ct).body(reqwest::Body::wrap_stream(stream)).send().await;
            let status = match r {
                Ok(r) => Some((r.status().as_u16(), r.bytes().await.unwrap_or_default().to_vec())),
                Err(_) => None, // the server answered and closed while we were still sending
            };
            (status, t.elapsed())
        }));
    }

    // Meanwhile everyone else is served promptly.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        let t = Instant::now();
        let (st, _) = s.get(&s.tuf(gun, "timestamp.json")).await;
        assert_eq!(st, 200);
        assert!(t.elapsed() < Duration::from_secs(1), "a GET took {:?} with slow and idle clients around", t.elapsed());
    }

    for h in slow {
        let (status, took) = h.await.unwrap();
        assert!(took < Duration::from_secs(8), "a slow upload was held for {took:?}");
        if let Some((code, body)) = status {
            assert_eq!(code, 408, "{}", String::from_utf8_lossy(&body));
            assert_eq!(api_error(&body).0, "MALFORMED_UPLOAD");
        }
    }
    assert_eq!(s.snapshot_of_state(gun).await, before, "a timed-out upload changed the repository");

    // The idle connections were closed by the server (TLS handshake timeout).
    let deadline = Instant::now() + Duration::from_secs(15);
    for mut c in idle {
        c.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)))).unwrap();
        let mut buf = [0u8; 16];
        match c.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("an idle connection was still open after 15 s: {other:?}"),
        }
    }
    // And a normal publish still works.
    let (st, body) = s.post_parts(gun, &[("targets", &targets)]).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
}
