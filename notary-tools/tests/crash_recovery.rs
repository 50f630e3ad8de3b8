//! `kill -9` of the server in the middle of publishes, many times: every acknowledged publish
//! is there afterwards, and nothing is half-stored (each stored targets version has the
//! snapshot and timestamp that name it, by hash).
#![cfg(feature = "system-tests")]

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sha2::{Digest, Sha256};

fn meta_sha(file: &[u8], role: &str) -> String {
    notary_bench::load::meta_sha(file, role).unwrap()
}

const KILLS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_publishes_loses_nothing_acknowledged() {
    let db = create_pg_db().await;
    let mut s = Server::start_with_db(&db).await;
    let gun = "example.com/crash/repo";
    let repo = Arc::new(init_repo(&s, gun).await);
    // What the client sent for each acknowledged version.
    let mut acked: Vec<(i64, Vec<u8>)> = Vec::new();
    let (mut next, mut unknown) = (2i64, 0usize);
    for round in 0..KILLS {
        let stop_at = Arc::new(AtomicI64::new(i64::MAX));
        let acked_now = Arc::new(AtomicI64::new(0));
        let (http, url) = (s.http.clone(), s.tuf(gun, ""));
        let (repo2, stop2, acked2) = (repo.clone(), stop_at.clone(), acked_now.clone());
        let publisher = tokio::spawn(async move {
            let (mut ok, mut v) = (Vec::new(), next);
            loop {
                let file =
                    repo2.targets_file(v, &[("t", format!("round {round} v{v}").as_bytes())]);
                let (ct, body) = multipart(&[("targets", &file)]);
                match http
                    .post(&url)
                    .header("content-type", ct)
                    .body(body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        ok.push((v, file));
                        acked2.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => panic!(
                        "publish v{v}: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    ),
                    // The server died: this publish may or may not have been stored.
                    Err(_) => return (ok, v),
                }
                v += 1;
                if v >= stop2.load(Ordering::SeqCst) {
                    return (ok, v);
                }
            }
        });
        // Let at least one publish through, then kill -9 at a varying moment, usually while the
        // next one is in flight (most of a publish's time is in the server).
        eventually(
            Duration::from_secs(20),
            Duration::from_millis(5),
            async || match acked_now.load(Ordering::SeqCst) {
                0 => Err(format!(
                    "round {round}: no publish acknowledged:\n{}",
                    s.log()
                )),
                _ => Ok(()),
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis((round as u64 * 37) % 150)).await;
        s.stop(); // SIGKILL
        let (ok, interrupted) = publisher.await.unwrap();
        acked.extend(ok);
        s = s.restart().await;
        // The interrupted publish either fully happened or not at all: continue after whatever
        // the server now says is current.
        let (st, targets) = s.get(&s.tuf(gun, "targets.json")).await;
        assert_eq!(st, 200);
        let current = version_of(&targets);
        assert!(
            current >= acked.last().map(|a| a.0).unwrap_or(1),
            "round {round}: acknowledged v{} lost",
            acked.last().unwrap().0
        );
        assert!(
            current == interrupted || current == interrupted - 1,
            "round {round}: current v{current}, interrupted v{interrupted}"
        );
        if current == interrupted {
            unknown += 1;
        }
        next = current + 1;
    }
    assert!(
        acked.len() >= KILLS,
        "too few publishes were acknowledged ({}) for the test to mean anything",
        acked.len()
    );

    // Every acknowledged publish is there, byte for byte.
    for (v, file) in &acked {
        let (st, stored) = s.get(&s.tuf(gun, &format!("{v}.targets.json"))).await;
        assert_eq!(st, 200, "acknowledged targets v{v} is missing");
        assert_eq!(
            &stored, file,
            "targets v{v} differs from what was acknowledged"
        );
    }
    // Nothing half-stored: every targets version has its snapshot and timestamp, chained by hash.
    let (_, targets) = s.get(&s.tuf(gun, "targets.json")).await;
    let newest = version_of(&targets);
    for v in 1..=newest {
        let (st1, t) = s.get(&s.tuf(gun, &format!("{v}.targets.json"))).await;
        let (st2, sn) = s.get(&s.tuf(gun, &format!("{v}.snapshot.json"))).await;
        let (st3, ts) = s.get(&s.tuf(gun, &format!("{v}.timestamp.json"))).await;
        assert_eq!(
            (st1, st2, st3),
            (200, 200, 200),
            "version {v}: targets/snapshot/timestamp not all stored"
        );
        assert_eq!(
            meta_sha(&sn, "targets"),
            hex::encode(Sha256::digest(&t)),
            "snapshot v{v} does not name targets v{v}"
        );
        assert_eq!(
            meta_sha(&ts, "snapshot"),
            hex::encode(Sha256::digest(&sn)),
            "timestamp v{v} does not name snapshot v{v}"
        );
    }
    assert_eq!(
        s.get(&s.tuf(gun, &format!("{}.targets.json", newest + 1)))
            .await
            .0,
        404
    );
    // The changefeed has one row per timestamp version, in order.
    let (_, feed) = s
        .get(&format!(
            "{}/v2/{gun}/_trust/changefeed?records=1000",
            s.url
        ))
        .await;
    let feed: serde_json::Value = serde_json::from_slice(&feed).unwrap();
    let versions: Vec<i64> = feed["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, (1..=newest).collect::<Vec<_>>());
    report_figures(
        "crash_recovery",
        &format!(
            "{KILLS} kill -9 during publishes: {} publishes acknowledged and present, {unknown} interrupted publishes found stored (unacknowledged), {} versions consistent",
            acked.len(),
            newest
        ),
    );
}
