//! Slow and idle clients hold nothing for long: uploads that trickle in end with 408 after the
//! upload timeout (state unchanged), connections that never speak are closed, and meanwhile
//! every other client is served at once.
#![cfg(feature = "system-tests")]

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_uploads_and_idle_connections_do_not_exhaust_the_server() {
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"server": {"upload_timeout_seconds": 2}}),
    )
    .await;
    let gun = "example.com/slow/repo";
    let repo = init_repo(&s, gun).await;
    let before = s.snapshot_of_state(gun).await;

    // 500 connections that never send a byte.
    let idle: Vec<std::net::TcpStream> = (0..500)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();

    // 20 publishes whose bodies trickle in (a byte every 100 ms, never complete in time).
    let targets = repo.targets_file(2, &[("slow", b"slow")]);
    let (ct, body) = multipart(&[("targets", &targets)]);
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
            let r = http
                .post(url)
                .header("content-type", ct)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await;
            let status = match r {
                Ok(r) => Some((
                    r.status().as_u16(),
                    r.bytes().await.unwrap_or_default().to_vec(),
                )),
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
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a GET took {:?} with slow and idle clients around",
            t.elapsed()
        );
    }

    for h in slow {
        let (status, took) = h.await.unwrap();
        assert!(
            took < Duration::from_secs(8),
            "a slow upload was held for {took:?}"
        );
        if let Some((code, body)) = status {
            assert_eq!(code, 408, "{}", String::from_utf8_lossy(&body));
            assert_eq!(api_error(&body).0, "MALFORMED_UPLOAD");
        }
    }
    assert_eq!(
        s.snapshot_of_state(gun).await,
        before,
        "a timed-out upload changed the repository"
    );

    // The idle connections were closed by the server (TLS handshake timeout).
    let deadline = Instant::now() + Duration::from_secs(15);
    for mut c in idle {
        c.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        ))
        .unwrap();
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

/// A rolling restart (SIGTERM, as `docker stop` and systemd send) drops nothing in flight: the
/// server stops accepting connections, closes idle ones, lets a publish whose body is still
/// arriving finish and be stored, and exits by itself with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_requests_in_flight_finish_then_exits() {
    let mut s = Server::start_with_config(&create_pg_db().await, serde_json::json!({})).await;
    let gun = "example.com/shutdown/repo";
    let repo = init_repo(&s, gun).await;
    let targets = repo.targets_file(2, &[("published-during-shutdown", b"x")]);
    let (ct, body) = multipart(&[("targets", &targets)]);
    // An idle keep-alive connection, which must not hold the shutdown up.
    assert_eq!(s.get(&s.tuf(gun, "timestamp.json")).await.0, 200);

    // Half of the upload now, the rest once the server has been told to stop.
    let (rest_tx, rest_rx) = tokio::sync::oneshot::channel::<()>();
    let half = body.len() / 2;
    let (first, second) = (body[..half].to_vec(), body[half..].to_vec());
    let stream = futures_util::stream::unfold((0, Some(rest_rx)), move |(i, rx)| {
        let (first, second) = (first.clone(), second.clone());
        async move {
            match i {
                0 => Some((Ok::<_, std::io::Error>(first), (1, rx))),
                1 => {
                    let _ = rx?.await;
                    Some((Ok(second), (2, None)))
                }
                _ => None,
            }
        }
    });
    let upload = {
        let (http, url) = (s.http.clone(), s.tuf(gun, ""));
        tokio::spawn(async move {
            http.post(url)
                .header("content-type", ct)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.signal("TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err(),
        "a new connection was accepted after SIGTERM"
    );
    assert!(
        s.exited_within(Duration::from_millis(10)).await.is_none(),
        "the server exited with a publish in flight"
    );

    rest_tx.send(()).unwrap();
    let r = upload
        .await
        .unwrap()
        .expect("the publish in flight was cut off by the shutdown");
    let status = r.status().as_u16();
    assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
    let exit = s
        .exited_within(Duration::from_secs(5))
        .await
        .expect("the server did not exit within 5 s of its last request");
    assert!(exit.success(), "exit status {exit}: {}", s.log());

    // The publish acknowledged during the shutdown is stored.
    let s = s.restart().await;
    let (st, body) = s.get(&s.tuf(gun, "targets.json")).await;
    assert_eq!(st, 200);
    assert_eq!(
        body, targets,
        "the targets published during the shutdown are not the ones served after it"
    );
}
