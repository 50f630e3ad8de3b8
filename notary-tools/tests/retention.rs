//! Retention (`notary-server prune`, `notary-server/src/retention.rs`) on a repository with a
//! long history, and on a database the Go server made.
#![cfg(feature = "system-tests")]

mod common;

use std::time::Duration;

use common::*;

fn prune(s: &Server, args: &[&str]) -> String {
    let mut all = vec!["prune"];
    all.extend_from_slice(args);
    let out = s.admin(&all).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "prune {args:?}: {text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn admin_json(s: &Server, args: &[&str]) -> serde_json::Value {
    let out = s.admin(args).output().unwrap();
    assert!(out.status.success(), "{args:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Pruned versions answer 404 by version; the newest kept ones, every root version and the
/// current chain stay; a Go client with an old trust cache (from before a root rotation)
/// still updates; the audit trail is kept and records the prune.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_what_clients_need() {
    let s = Server::start_backend(Backend::Postgres).await;
    let gun = "example.com/retention/repo";
    let repo = init_repo(&s, gun).await;
    let publish = |v: i64| {
        let file = repo.targets_file(v, &[(&format!("t{v}"), b"x")]);
        let s = &s;
        async move {
            let (st, body) = s.post_parts(gun, &[("targets", &file)]).await;
            assert_eq!(st, 200, "v{v}: {}", String::from_utf8_lossy(&body));
        }
    };
    for v in 2..=5 {
        publish(v).await;
    }
    // A Go client caches the repository at targets v5 and root v1.
    let tmp = tempfile::tempdir().unwrap();
    let old = s.notary(tmp.path().join("old").to_str().unwrap());
    assert!(old.ok(&["list", gun]).contains("t5"));
    // The root is rotated (v2), and the history grows.
    let (st, body) = s.post_parts(gun, &[("root", &repo.root_file(2))]).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    for v in 6..=30 {
        publish(v).await;
    }
    let newest = |role: &str, r: &serde_json::Value| r["roles"][role]["newest"].as_i64().unwrap();
    let before = admin_json(&s, &["repos", "--json"])[0].clone();
    let (ts_newest, sn_newest) = (newest("timestamp", &before), newest("snapshot", &before));
    assert_eq!(newest("targets", &before), 30);
    let trail_before = admin_json(&s, &["audit", "--json"])
        .as_array()
        .unwrap()
        .len();

    // A dry run counts and removes nothing.
    let dry: serde_json::Value = serde_json::from_str(&prune(
        &s,
        &[
            "--keep-versions",
            "3",
            "--keep-days",
            "0",
            "--dry-run",
            "--json",
        ],
    ))
    .unwrap();
    let would = dry["repositories"][0]["removed"].as_u64().unwrap();
    assert_eq!(
        would,
        (30 - 3) + (sn_newest as u64 - 3) + (ts_newest as u64 - 3),
        "{dry}"
    );
    assert_eq!(
        admin_json(&s, &["repos", "--json"])[0]["files"],
        before["files"]
    );

    // The running instance has old versions cached; the public changefeed as it was.
    for v in 1..=2 {
        let (st, _) = s.get(&s.tuf(gun, &format!("{v}.targets.json"))).await;
        assert_eq!(st, 200);
    }
    let feed_url = format!("{}/v2/{gun}/_trust/changefeed?records=1000", s.url);
    let feed_before = s.get(&feed_url).await.1;

    // Keep everything younger than a day: nothing goes.
    let out = prune(&s, &["--keep-versions", "3"]);
    assert!(out.contains("removed 0 versions"), "{out}");

    let out = prune(
        &s,
        &[
            "--keep-versions",
            "3",
            "--keep-days",
            "0",
            "--audit-older-than",
            "1",
        ],
    );
    assert!(
        out.contains(&format!(
            "removed {would} versions of 1 repositories; 0 audit records removed"
        )),
        "{out}"
    );

    // The running instance is told, as of any write: it stops serving what was removed.
    for v in 1..=2 {
        let file = s.tuf(gun, &format!("{v}.targets.json"));
        eventually(
            Duration::from_secs(10),
            Duration::from_millis(50),
            async || match s.get(&file).await.0 {
                404 => Ok(()),
                st => Err(format!(
                    "{v}.targets.json still served ({st}) after the prune"
                )),
            },
        )
        .await;
    }
    assert_eq!(
        s.get(&feed_url).await.1,
        feed_before,
        "the prune is not in the public changefeed"
    );

    // A fresh instance (nothing cached) on the same database.
    let fresh = Server::start_with_db(s.db_url.as_deref().unwrap()).await;
    for (role, top) in [
        ("targets", 30),
        ("snapshot", sn_newest),
        ("timestamp", ts_newest),
    ] {
        for v in 1..=top {
            let (st, _) = fresh
                .get(&fresh.tuf(gun, &format!("{v}.{role}.json")))
                .await;
            let want = if v > top - 3 { 200 } else { 404 };
            assert_eq!(st, want, "{v}.{role}.json");
        }
    }
    for v in 1..=2 {
        assert_eq!(
            fresh
                .get(&fresh.tuf(gun, &format!("{v}.root.json")))
                .await
                .0,
            200,
            "root v{v}"
        );
    }
    for role in ["root", "targets", "snapshot", "timestamp"] {
        assert_eq!(
            fresh.get(&fresh.tuf(gun, &format!("{role}.json"))).await.0,
            200,
            "{role}.json"
        );
    }
    // The Go client with the old cache follows the root chain and sees the newest targets.
    let listed = old.ok(&["list", gun]);
    assert!(
        listed.contains("t30") && !listed.contains("t5 "),
        "{listed}"
    );
    // And the repository still takes publishes.
    publish(31).await;
    assert!(old.ok(&["list", gun]).contains("t31"));

    // The audit trail is kept, and records the prune.
    let trail = admin_json(&s, &["audit", "--json"]);
    let trail = trail.as_array().unwrap();
    assert_eq!(trail.len(), trail_before + 2, "the prune and publish 31");
    let pruned = &trail[trail_before];
    assert_eq!(pruned["action"], "prune");
    assert_eq!(
        pruned["roles"],
        format!(
            "snapshot:{},targets:27,timestamp:{}",
            sn_newest - 3,
            ts_newest - 3
        )
    );
}

/// On a database the Go server created and wrote (a delegation, a snapshot key rotation):
/// pruning to one version of each role leaves a repository the Go CLI reads as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_works_on_a_go_database() {
    let s = Server::start_backend(Backend::GoPopulatedPostgres).await;
    let before = admin_json(&s, &["repos", "--json"]);
    let out = prune(&s, &["--keep-versions", "1", "--keep-days", "0"]);
    assert!(!out.contains("removed 0 versions"), "{out}");
    let after = admin_json(&s, &["repos", "--json"]);
    assert!(
        after[0]["files"].as_i64() < before[0]["files"].as_i64(),
        "{after}"
    );
    let fresh = Server::start_with_db(s.db_url.as_deref().unwrap()).await;
    let tmp = tempfile::tempdir().unwrap();
    let listed = fresh
        .notary(tmp.path().join("fresh").to_str().unwrap())
        .ok(&["list", GO_GUN]);
    assert!(
        listed.contains("go-v1") && listed.contains("go-release"),
        "{listed}"
    );
}

/// The `retention` config block: instances on one database prune in the background, one at a
/// time, as `prune` does; the records name "retention".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_in_the_background() {
    let db = create_pg_db().await;
    let cfg = serde_json::json!({"retention": {"keep_versions": 2, "keep_days": 0, "interval_seconds": 1}});
    let a = Server::start_with_config(&db, cfg.clone()).await;
    let _b = Server::start_with_config(&db, cfg).await;
    let gun = "example.com/retention/background";
    let repo = init_repo(&a, gun).await;
    for v in 2..=8 {
        let (st, _) = a
            .post_parts(gun, &[("targets", &repo.targets_file(v, &[("t", b"t")]))])
            .await;
        assert_eq!(st, 200);
    }
    eventually(
        Duration::from_secs(30),
        Duration::from_millis(300),
        async || {
            let r = &admin_json(&a, &["repos", "--json"])[0];
            // Two versions each of targets, snapshot and timestamp, and the root.
            (r["files"] == 7)
                .then_some(())
                .ok_or_else(|| format!("retention never ran: {r}\n{}", a.log()))
        },
    )
    .await;
    let trail = admin_json(&a, &["audit", gun, "--json"]);
    let prunes: Vec<&serde_json::Value> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "prune")
        .collect();
    assert!(!prunes.is_empty());
    assert!(
        prunes.iter().all(|e| e["subject"] == "retention"),
        "{prunes:?}"
    );
    assert_eq!(a.get(&a.tuf(gun, "targets.json")).await.0, 200);
    assert_eq!(a.get(&a.tuf(gun, "1.targets.json")).await.0, 404);
}
