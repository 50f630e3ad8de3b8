//! Raw HTTP behaviour: Go status codes, error codes and envelopes, headers; every rejected
//! request leaves the stored state as it was.
#![cfg(feature = "system-tests")]

mod common;

use common::*;

on_both_backends!(rejected_uploads_keep_state, protocol_details);

const GUN: &str = "example.com/api/repo";

/// A repository published by the Go CLI (client holds the snapshot key), and the bytes of the
/// files the client cached.
async fn published(backend: Backend) -> (Server, Notary) {
    let s = Server::start_backend(backend).await;
    let c = s.notary("owner");
    let f = write_file(s.tmp(), "a.txt", b"content\n");
    c.ok(&["init", GUN]);
    c.ok(&["add", GUN, "v1", f.to_str().unwrap()]);
    c.ok(&["publish", GUN]);
    (s, c)
}

fn cached(c: &Notary, role: &str) -> Vec<u8> {
    std::fs::read(c.dir.join(format!("tuf/{GUN}/metadata/{role}.json"))).unwrap()
}

async fn post(s: &Server, parts: &[(&str, &[u8])]) -> (u16, Vec<u8>) {
    s.post_parts(GUN, parts).await
}

async fn rejected_uploads_keep_state(backend: Backend) {
    let (s, c) = published(backend).await;
    let before = s.snapshot_of_state(GUN).await;
    let targets = cached(&c, "targets");
    let snapshot = cached(&c, "snapshot");

    // Same versions again: VERSION with an empty detail.
    let (st, body) = post(&s, &[("targets", &targets), ("snapshot", &snapshot)]).await;
    assert_eq!(
        (st, api_error(&body)),
        (400, ("VERSION".into(), serde_json::json!({})))
    );

    // Invalid role names: INVALID_ROLE with the role as detail.
    for bad in ["Targets", "targets/Foo", "targets/a.b", "../root"] {
        let (st, body) = post(&s, &[(bad, &targets)]).await;
        assert_eq!(
            (st, api_error(&body)),
            (400, ("INVALID_ROLE".into(), serde_json::json!(bad))),
            "{bad}"
        );
    }
    // No filename.
    let (st, body) = post(&s, &[("", &targets)]).await;
    assert_eq!((st, api_error(&body).0), (400, "NO_FILENAME".into()));

    // A broken signature: ErrBadTargets, as the Go client parses it.
    let mut v: serde_json::Value = serde_json::from_slice(&targets).unwrap();
    v["signed"]["version"] = serde_json::json!(v["signed"]["version"].as_i64().unwrap() + 1);
    let forged = serde_json::to_vec(&v).unwrap();
    let (st, body) = post(&s, &[("targets", &forged)]).await;
    let (code, detail) = api_error(&body);
    assert_eq!((st, code.as_str()), (400, "INVALID_UPDATE"));
    assert_eq!(detail["Name"], "ErrBadTargets");
    assert_eq!(
        detail["Error"]["Msg"],
        "valid signatures did not meet threshold for targets"
    );

    // Targets without a snapshot while the client holds the snapshot key: ErrBadHierarchy.
    let (st, body) = post(&s, &[("targets", &targets)]).await;
    let (code, detail) = api_error(&body);
    assert_eq!((st, code.as_str()), (400, "INVALID_UPDATE"));
    // Go's message, then the repository and what to do (imported repositories land here).
    assert_eq!(
        (detail["Name"].as_str(), detail["Error"]["Missing"].as_str()),
        (Some("ErrBadHierarchy"), Some("snapshot"))
    );
    let msg = detail["Error"]["Msg"].as_str().unwrap();
    assert!(msg.starts_with("no snapshot was included in update and server does not hold current snapshot key for repository"), "{msg}");
    assert!(msg.contains("notary-rekey"), "{msg}");

    // Root with a version that skips ahead.
    let mut root: serde_json::Value = serde_json::from_slice(&cached(&c, "root")).unwrap();
    root["signed"]["version"] = serde_json::json!(5);
    let (st, body) = post(&s, &[("root", &serde_json::to_vec(&root).unwrap())]).await;
    let (code, detail) = api_error(&body);
    assert_eq!(
        (st, code.as_str(), detail["Name"].as_str()),
        (400, "INVALID_UPDATE", Some("ErrBadRoot"))
    );
    assert_eq!(
        detail["Error"]["Msg"],
        "Root modifications must increment the version. Current 1, new 5"
    );

    // Version beyond the Go schema's integer column.
    let mut big: serde_json::Value = serde_json::from_slice(&targets).unwrap();
    big["signed"]["version"] = serde_json::json!(1u64 << 40);
    let (st, body) = post(&s, &[("targets", &serde_json::to_vec(&big).unwrap())]).await;
    assert_eq!((st, api_error(&body).0), (400, "INVALID_UPDATE".into()));

    // Not multipart; a multipart body cut in the middle.
    let r = s
        .http
        .post(s.tuf(GUN, ""))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(api_error(&r.bytes().await.unwrap()).0, "MALFORMED_UPLOAD");
    let r = s
        .http
        .post(s.tuf(GUN, ""))
        .header("content-type", "multipart/form-data; boundary=zz")
        .body("--zz\r\nContent-Disposition: form-data; name=\"files\"; filename=\"targets\"\r\n\r\n{\"sig")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(api_error(&r.bytes().await.unwrap()).0, "MALFORMED_UPLOAD");

    // GUN with a '..' segment (reached without path cleaning through an encoded slash).
    let r = s
        .http
        .post(format!("{}/v2/a/..%2Fb/_trust/tuf/", s.url))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error() || r.status().is_redirection(),
        "{}",
        r.status()
    );

    assert_eq!(
        s.snapshot_of_state(GUN).await,
        before,
        "nothing stored by rejected requests"
    );
    // The CLI still sees the original repository.
    assert!(s.notary("fresh").ok(&["list", GUN]).contains("v1"));
    assert!(!s.log().contains("panicked"));
}

async fn protocol_details(backend: Backend) {
    let (s, _c) = published(backend).await;
    // Ping.
    let (st, body) = s.get(&format!("{}/v2/", s.url)).await;
    assert_eq!((st, body.as_slice()), (200, &b"{}"[..]));
    // Unknown paths, missing trailing slash, key endpoints for other roles: catch-all 404.
    for p in [
        "/v2",
        "/nope",
        &format!("/v2/{GUN}/_trust/tuf/root.key"),
        &format!("/v2/{GUN}/_trust/tuf/targets.key"),
    ] {
        let (st, body) = s.get(&format!("{}{p}", s.url)).await;
        assert_eq!(
            (st, api_error(&body).0),
            (404, "METADATA_NOT_FOUND".into()),
            "{p}"
        );
    }
    // Methods the Go router does not know: 405 with an empty body.
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/v2/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.bytes().await.unwrap().is_empty());
    // Paths that need cleaning: 301 to the clean path.
    let nofollow = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&s.ca).unwrap()).unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = nofollow
        .get(format!("{}/v2//{GUN}/_trust/tuf/root.json", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.headers()["location"],
        format!("/v2/{GUN}/_trust/tuf/root.json")
    );

    // Cache headers, ETag and 304 revalidation.
    let r = s.http.get(s.tuf(GUN, "root.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=300, s-maxage=300, must-revalidate"
    );
    assert!(r.headers().contains_key("last-modified"));
    let etag = r.headers()["etag"].clone();
    let r = s
        .http
        .get(s.tuf(GUN, "root.json"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = s.http.get(s.tuf(GUN, "1.root.json")).send().await.unwrap();
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=2592000, s-maxage=2592000"
    );

    // Key endpoint: the timestamp key listed in root, as Go's stdlib JSON writes it.
    let (st, body) = s.get(&s.tuf(GUN, "timestamp.key")).await;
    assert_eq!(st, 200);
    let key: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(String::from_utf8_lossy(&body)
        .starts_with("{\"keytype\":\"ecdsa\",\"keyval\":{\"public\":\""));
    assert!(key["keyval"]["private"].is_null());
    // A new GUN: the same pending key is handed out until it is used.
    let (_, k1) = s.get(&s.tuf("example.com/new", "timestamp.key")).await;
    let (_, k2) = s.get(&s.tuf("example.com/new", "timestamp.key")).await;
    assert_eq!(k1, k2);

    // Changefeed: records required; ids are strings; negative pages backwards.
    let (st, body) = s.get(&format!("{}/v2/_trust/changefeed", s.url)).await;
    let (code, detail) = api_error(&body);
    assert_eq!((st, code.as_str()), (400, "INVALID_PARAMETERS"));
    assert_eq!(
        detail,
        serde_json::json!(
            "invalid records parameter: strconv.ParseInt: parsing \"\": invalid syntax"
        )
    );
    let (st, body) = s
        .get(&format!(
            "{}/v2/_trust/changefeed?records=10&change_id=x",
            s.url
        ))
        .await;
    assert_eq!((st, api_error(&body).0), (400, "INVALID_PARAMETERS".into()));
    let (st, body) = s
        .get(&format!("{}/v2/{GUN}/_trust/changefeed?records=10", s.url))
        .await;
    assert_eq!(st, 200);
    let feed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(feed["count"], 1);
    assert_eq!(feed["records"][0]["GUN"], GUN);
    assert_eq!(feed["records"][0]["Category"], "update");
    assert!(feed["records"][0]["ID"].is_string());
    assert!(
        String::from_utf8_lossy(&body).contains("{\"ID\":"),
        "Go field order"
    );

    // Health and metrics.
    let (st, body) = s.get(&format!("{}/_notary_server/health", s.url)).await;
    assert_eq!((st, body.as_slice()), (200, &b"{}"[..]));
    let (st, body) = s.get(&format!("{}/metrics", s.url)).await;
    assert_eq!(st, 200);
    let metrics = String::from_utf8_lossy(&body);
    assert!(metrics.contains(
        "notary_server_http_requests_total{code=\"200\",method=\"post\",operation=\"UpdateTUF\"} 1"
    ));
    // The read cache reports what it holds (this repository's chain, at least).
    let gauge = |name: &str| -> u64 {
        metric_sample(&metrics, name)
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
            .parse()
            .unwrap()
    };
    assert!(gauge("notary_rs_cache_repositories") >= 1);
    assert!(gauge("notary_rs_cache_files") >= 1);
    assert!(gauge("notary_rs_cache_bytes") > 0);
    // Request latency by operation: every request counted once, in cumulative buckets.
    let requests: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("notary_server_http_requests_total{")
                && l.contains("operation=\"GetRole\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(requests > 0);
    assert_eq!(
        gauge("notary_rs_http_request_duration_seconds_count{operation=\"GetRole\"}"),
        requests
    );
    assert_eq!(
        gauge("notary_rs_http_request_duration_seconds_bucket{operation=\"GetRole\",le=\"+Inf\"}"),
        requests
    );
    let in_a_second =
        gauge("notary_rs_http_request_duration_seconds_bucket{operation=\"GetRole\",le=\"1\"}");
    assert!(in_a_second > 0 && in_a_second <= requests);
}

#[tokio::test]
async fn upload_limit_and_gun_prefixes() {
    let db = create_pg_db().await;
    let s = Server::start_with_config(
        &db,
        serde_json::json!({"server": {"max_upload_bytes": 8192}, "repositories": {"gun_prefixes": ["example.com/allowed/"]}}),
    )
    .await;
    let ok_gun = "example.com/allowed/repo";
    let c = s.notary("c");
    let f = write_file(s.tmp(), "a.txt", b"a\n");
    c.ok(&["init", ok_gun]);
    c.ok(&["add", ok_gun, "v1", f.to_str().unwrap()]);
    c.ok(&["publish", ok_gun]);
    let before = s.snapshot_of_state(ok_gun).await;

    // Larger than the limit: refused before it is read, nothing stored.
    let big = vec![b'x'; 20_000];
    let r = s.publish_request(ok_gun, &[("targets", &big)]).await;
    assert_eq!(r.status(), 413);
    assert_eq!(api_error(&r.bytes().await.unwrap()).0, "MALFORMED_UPLOAD");
    assert_eq!(s.snapshot_of_state(ok_gun).await, before);

    // GUNs outside the prefixes: publish → 400 INVALID_GUN with Go's detail; reads → 404.
    let other = "example.com/other/repo";
    let r = s.publish_request(other, &[("targets", b"{}")]).await;
    assert_eq!(r.status(), 400);
    let (code, detail) = api_error(&r.bytes().await.unwrap());
    assert_eq!(
        (code.as_str(), detail),
        (
            "INVALID_GUN",
            serde_json::json!("Require GUNs with prefix: [example.com/allowed/]")
        )
    );
    for path in ["root.json", "timestamp.key"] {
        let (st, body) = s.get(&s.tuf(other, path)).await;
        assert_eq!(
            (st, api_error(&body).0),
            (404, "METADATA_NOT_FOUND".into()),
            "{path}"
        );
    }
    let r = s.notary("d").run(&["init", other]);
    assert!(!r.ok);
    let (_, feed) = s
        .get(&format!("{}/v2/_trust/changefeed?records=10", s.url))
        .await;
    assert!(!String::from_utf8_lossy(&feed).contains(other));
}

/// A chain is loaded with the newest snapshot in the same statement as the newest timestamp;
/// when the timestamp names another snapshot, or the snapshot another targets (here stray newer
/// rows), the named ones are served.
#[tokio::test]
async fn the_snapshot_the_timestamp_names_is_served() {
    let (s, c) = published(Backend::Postgres).await;
    let (_, snapshot) = s.get(&s.tuf(GUN, "snapshot.json")).await;
    let (_, targets) = s.get(&s.tuf(GUN, "targets.json")).await;
    let db = sqlx::PgPool::connect(s.db_url.as_deref().unwrap())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) \
         SELECT now(), now(), $1, role, 999, '\\x7b7d', encode(sha256('\\x7b7d'), 'hex') \
         FROM (VALUES ('snapshot'), ('targets')) AS r(role)",
    )
    .bind(GUN)
    .execute(&db)
    .await
    .unwrap();
    // A new instance: nothing cached.
    let s = s.restart().await;
    let (st, served) = s.get(&s.tuf(GUN, "targets.json")).await;
    assert_eq!((st, served), (200, targets));
    let (st, served) = s.get(&s.tuf(GUN, "snapshot.json")).await;
    assert_eq!((st, served), (200, snapshot));
    let listed = c.ok(&["list", GUN]);
    assert!(listed.contains("v1"), "{listed}");
}
