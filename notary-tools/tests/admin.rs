//! Day-2 commands of the server binary against its storage — `repos`, `show`, `delete`,
//! `audit` — and the audit trail every write leaves (`notary-server/src/audit.rs`).
#![cfg(feature = "system-tests")]

mod common;

use common::*;

const GUN: &str = "example.com/admin/repo";

fn run(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = s.admin(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn audit(s: &Server, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = run(s, &all);
    assert!(ok, "audit: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The trail of one flow on `s`: two repositories made through the API (keys created,
/// publishes), a key rotated, one repository deleted through the API and one by the operator.
async fn every_write_is_recorded(s: &Server) {
    let repo = init_repo(s, GUN).await; // timestamp + snapshot keys created, publish v1
    let file = repo.targets_file(2, &[("a", b"a")]);
    let (ct, body) = multipart(&[("targets", &file)]);
    let r = s
        .http
        .post(s.tuf(GUN, ""))
        .header("content-type", ct)
        .header("x-request-id", "req-admin-1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "req-admin-1");
    // A refused publish (an old version) is not a write, and leaves no record.
    let before = audit(s, &[]).len();
    let (st, _) = s.post_parts(GUN, &[("targets", &file)]).await;
    assert_eq!(st, 400);
    assert_eq!(audit(s, &[]).len(), before);
    let r = s
        .http
        .post(s.tuf(GUN, "timestamp.key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotation_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(rotation_id.len(), 32, "a request id made by the server");

    let by_api = "example.com/admin/by-api";
    let by_admin = "example.com/admin/by-operator";
    init_repo(s, by_api).await;
    init_repo(s, by_admin).await;
    let r = s.http.delete(s.tuf(by_api, "")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // The operator deletes a repository: the running server stops serving it at once.
    assert_eq!(s.get(&s.tuf(by_admin, "timestamp.json")).await.0, 200);
    let (ok, out, err) = run(
        s,
        &["delete", by_admin, "--reason", "owner lost the root key"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("deleted {by_admin}")), "{out}");
    assert_eq!(s.get(&s.tuf(by_admin, "timestamp.json")).await.0, 404);
    let (ok, _, err) = run(s, &["delete", by_admin, "--reason", "again"]);
    assert!(!ok && err.contains("nothing deleted"), "{err}");
    let (ok, _, err) = run(s, &["delete", GUN, "--reason", " "]);
    assert!(!ok && err.contains("--reason"), "{err}");
    assert_eq!(s.get(&s.tuf(GUN, "timestamp.json")).await.0, 200);

    // The trail, oldest first.
    let trail = audit(s, &[GUN]);
    let got: Vec<(String, String)> = trail
        .iter()
        .map(|e| {
            let roles = e["roles"].as_str().unwrap();
            // Key records name the key ID after the role.
            let roles = roles
                .split(':')
                .next()
                .filter(|_| e["action"].as_str().unwrap().starts_with("key-"));
            (
                e["action"].as_str().unwrap().to_string(),
                roles.map_or(e["roles"].as_str().unwrap().to_string(), str::to_string),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("key-create", "timestamp"),
        ("key-create", "snapshot"),
        ("publish", "root:1,targets:1,snapshot:1,timestamp:1"),
        ("publish", "targets:2,snapshot:2,timestamp:2"),
        ("key-rotate", "timestamp"),
    ]
    .iter()
    .map(|(a, r)| (a.to_string(), r.to_string()))
    .collect();
    assert_eq!(got, want, "{trail:#?}");
    for e in &trail {
        assert_eq!(e["gun"], GUN);
        assert_eq!(e["client"], "127.0.0.1");
        assert!(e["subject"].is_null(), "no token auth: {e}");
        assert!(e["at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(trail[3]["request_id"], "req-admin-1");
    assert_eq!(trail[4]["request_id"], rotation_id.as_str());

    let api_delete = audit(s, &[by_api]);
    let last = api_delete.last().unwrap();
    assert_eq!(
        (last["action"].as_str(), last["client"].as_str()),
        (Some("delete"), Some("127.0.0.1"))
    );
    let admin_delete = audit(s, &[by_admin]);
    let last = admin_delete.last().unwrap();
    assert_eq!(last["action"], "delete");
    assert_eq!(last["reason"], "owner lost the root key");
    assert!(
        last["subject"].as_str().unwrap().starts_with("admin:"),
        "{last}"
    );
    assert!(last["client"].is_null());

    // --since: an age, or a time.
    assert_eq!(audit(s, &[GUN, "--since", "1h"]).len(), trail.len());
    assert!(audit(s, &[GUN, "--since", "2999-01-01T00:00:00Z"]).is_empty());
    let (ok, _, err) = run(s, &["audit", "--since", "yesterday"]);
    assert!(!ok && err.contains("--since"), "{err}");
    let (ok, table, _) = run(s, &["audit", GUN]);
    assert!(
        ok && table.starts_with("AT") && table.contains("req-admin-1"),
        "{table}"
    );

    // Each record is also a log event.
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.contains("notary_rs::audit") && l.contains("req-admin-1")),
        "{log}"
    );

    // repos / show.
    let (ok, out, err) = run(s, &["repos", "--json"]);
    assert!(ok, "{err}");
    let repos: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let guns: Vec<&str> = repos.iter().map(|r| r["gun"].as_str().unwrap()).collect();
    assert_eq!(guns, [GUN], "deleted repositories are gone: {out}");
    let r = &repos[0];
    assert_eq!(r["roles"]["targets"]["newest"], 2);
    assert_eq!(r["roles"]["targets"]["versions"], 2);
    assert_eq!(r["roles"]["root"]["newest"], 1);
    assert_eq!(r["files"], 7);
    assert!(r["bytes"].as_i64().unwrap() > 1000);
    assert_eq!(r["holds_timestamp_key"], true);
    assert_eq!(r["holds_snapshot_key"], true);
    assert!(r["timestamp_expires"].as_str().is_some());
    let (ok, table, _) = run(s, &["repos"]);
    assert!(
        ok && table.starts_with("GUN") && table.contains(GUN),
        "{table}"
    );
    assert!(table.contains("1 repositories, 7 files"), "{table}");
    let (ok, out, _) = run(s, &["show", GUN, "--json"]);
    assert!(ok);
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["repository"]["gun"], GUN);
    assert_eq!(shown["audit"].as_array().unwrap().len(), trail.len());
    let (ok, text, _) = run(s, &["show", GUN]);
    assert!(
        ok && text.contains("keys held here: timestamp, snapshot"),
        "{text}"
    );
    let (ok, _, err) = run(s, &["show", "example.com/nothing"]);
    assert!(!ok && err.contains("no repository"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_in_the_audit_trail() {
    let pg = Server::start_backend(Backend::Postgres).await;
    every_write_is_recorded(&pg).await;
    let sqlite = Server::start().await;
    every_write_is_recorded(&sqlite).await;
}

/// A key created (and so recorded) under a push token of `ts`'s subject.
async fn create_key_with_a_token(ts: &TokenService, s: &Server) {
    let token = ts.token(
        &[Grant {
            typ: "repository",
            name: GUN,
            actions: &["push", "pull"],
        }],
        300,
        &ts.issuer,
        &ts.service,
    );
    let r = s
        .http
        .get(s.tuf(GUN, "timestamp.key"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// With token auth on, a record names the token's subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_subject_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let (ts, s) = server_with_token_auth(tmp.path()).await;
    create_key_with_a_token(&ts, &s).await;
    let trail = audit(&s, &[GUN]);
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0]["action"], "key-create");
    assert_eq!(trail[0]["subject"], "alice");
}

/// A token subject is the token issuer's text: it cannot forge a row of the audit table.
#[tokio::test]
async fn an_audit_subject_cannot_forge_a_row() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut ts, s) = server_with_token_auth(tmp.path()).await;
    ts.subject = "eve\n2026-01-01T00:00:00Z  delete  docker.io/forged\u{1b}[2K\u{7}".into();
    create_key_with_a_token(&ts, &s).await;
    assert_eq!(audit(&s, &[GUN])[0]["subject"], ts.subject.as_str());
    let (ok, out, err) = run(&s, &["audit"]);
    assert!(ok, "{out}{err}");
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "header, one row, the count: {out}");
    assert!(lines[1].contains("eve\\n2026-01-01T00:00:00Z"), "{out}");
    assert!(!lines.iter().any(|l| l.starts_with("2026-01-01")), "{out}");
}
