//! Our server and Debian's Go notary-server on the same Postgres database, in both directions.
#![cfg(feature = "system-tests")]

mod common;

use common::*;

#[tokio::test]
async fn serves_a_repository_the_go_server_wrote() {
    let db = go_populated_db().await;
    let s = Server::start_with_db(&db).await;
    let c = s.notary("reader");
    let list = c.ok(&["list", GO_GUN]);
    assert!(
        list.contains("go-v1") && list.contains("go-release") && list.contains("targets/releases"),
        "{list}"
    );
    let v = c.run_with_input(
        &["verify", GO_GUN, "go-v1"],
        b"written through the Go server\n",
    );
    assert!(v.ok, "{}", v.output());
    // The Go server's rows are all readable: versions, changefeed.
    assert_eq!(s.get(&s.tuf(GO_GUN, "1.root.json")).await.0, 200);
    let (st, feed) = s
        .get(&format!(
            "{}/v2/{GO_GUN}/_trust/changefeed?records=100",
            s.url
        ))
        .await;
    assert_eq!(st, 200);
    let feed: serde_json::Value = serde_json::from_slice(&feed).unwrap();
    assert!(feed["count"].as_u64().unwrap() >= 4, "{feed}");
    assert!(feed["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["GUN"] == GO_GUN && r["SHA256"].as_str().unwrap().len() == 64));
    // And new repositories work on the Go-created schema.
    let f = write_file(s.tmp(), "n.txt", b"new\n");
    c.ok(&["init", "example.com/after/takeover"]);
    c.ok(&[
        "add",
        "example.com/after/takeover",
        "t",
        f.to_str().unwrap(),
    ]);
    c.ok(&["publish", "example.com/after/takeover"]);
    assert!(s
        .notary("other")
        .ok(&["list", "example.com/after/takeover"])
        .contains("t "));
}

#[tokio::test]
async fn go_server_runs_on_our_database() {
    // Roll-back path: our migrations create the schema and our server writes a repository...
    let db = create_pg_db().await;
    let mut s = Server::start_with_db(&db).await;
    let owner = s.notary("owner");
    let f = write_file(s.tmp(), "r.txt", b"written through the Rust server\n");
    let gun = "example.com/rust/written";
    owner.ok(&["init", gun]);
    owner.ok(&["add", gun, "rust-v1", f.to_str().unwrap()]);
    owner.ok(&["publish", gun]);
    owner.ok(&["key", "rotate", gun, "snapshot", "-r"]);
    owner.ok(&["add", gun, "rust-v2", f.to_str().unwrap()]);
    owner.ok(&["publish", gun]);
    s.stop();

    // ...then the Go server takes over the same database.
    let go = GoServer::start(&db).await;
    let reader = go.notary(&go.tmp.path().join("reader"));
    let list = reader.ok(&["list", gun]);
    assert!(
        list.contains("rust-v1") && list.contains("rust-v2"),
        "{list}"
    );
    let v = reader.run_with_input(
        &["verify", gun, "rust-v2"],
        b"written through the Rust server\n",
    );
    assert!(v.ok, "{}", v.output());
    // The Go server can write on our schema too.
    let g = "example.com/go/after";
    let w = go.notary(&go.tmp.path().join("writer"));
    w.ok(&["init", g]);
    w.ok(&["add", g, "go-t", f.to_str().unwrap()]);
    w.ok(&["publish", g]);
    assert!(go
        .notary(&go.tmp.path().join("r2"))
        .ok(&["list", g])
        .contains("go-t"));

    // golang-migrate would find the schema up to date.
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    let (v, dirty): (i64, bool) = sqlx::query_as("SELECT version, dirty FROM schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!((v, dirty), (2, false));
}
