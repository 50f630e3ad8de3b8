//! Token auth (`auth.type = "token"`): challenges, token checks, scopes, and the real notary CLI
//! obtaining tokens from a realm.
#![cfg(feature = "system-tests")]

mod common;

use common::*;

const GUN: &str = "example.com/auth/repo";

async fn get_with(s: &Server, url: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut r = s.http.get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        r.status().as_u16(),
        challenge,
        r.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_like_go() {
    let tmp = tempfile::tempdir().unwrap();
    let (ts, s) = server_with_token_auth(tmp.path()).await;
    let realm = ts.realm.clone();
    let pull = [Grant {
        typ: "repository",
        name: GUN,
        actions: &["pull"],
    }];
    let push_pull = [Grant {
        typ: "repository",
        name: GUN,
        actions: &["push", "pull"],
    }];

    // No token: 401 with the exact challenge and the UNAUTHORIZED envelope listing the access.
    let (st, ch, body) = get_with(&s, &format!("{}/v2/", s.url), None).await;
    assert_eq!(st, 401);
    assert_eq!(
        ch,
        format!("Bearer realm=\"{realm}\",service=\"notary.test\",scope=\"registry:catalog:*\"")
    );
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":[{\"Action\":\"*\",\"Class\":\"\",\"Name\":\"catalog\",\"Type\":\"registry\"}]}]}\n"
    );
    let (st, ch, _) = get_with(&s, &s.tuf(GUN, "root.json"), None).await;
    assert_eq!(
        (st, ch),
        (
            401,
            format!(
                "Bearer realm=\"{realm}\",service=\"notary.test\",scope=\"repository:{GUN}:pull\""
            )
        )
    );
    let (st, ch, _) = get_with(&s, &s.tuf(GUN, "timestamp.key"), None).await;
    assert_eq!((st, ch), (401, format!("Bearer realm=\"{realm}\",service=\"notary.test\",scope=\"repository:{GUN}:push,pull\"")));
    // Health and metrics need no token.
    assert_eq!(
        get_with(&s, &format!("{}/metrics", s.url), None).await.0,
        200
    );
    assert_eq!(
        get_with(&s, &format!("{}/_notary_server/health", s.url), None)
            .await
            .0,
        200
    );

    // A valid pull token is served (404: the repository does not exist yet).
    let good = ts.token(&pull, 300, &ts.issuer, &ts.service);
    assert_eq!(
        get_with(&s, &s.tuf(GUN, "root.json"), Some(&good)).await.0,
        404
    );
    // A kid-named key from the bundle works too.
    assert_eq!(
        get_with(&s, &s.tuf(GUN, "root.json"), Some(&ts.kid_token(&pull)))
            .await
            .0,
        404
    );

    // Rejections: expired, wrong issuer, wrong audience, bad signature, tampered, another repo.
    let other = [Grant {
        typ: "repository",
        name: "example.com/other",
        actions: &["pull", "push"],
    }];
    let mut tampered = good.clone();
    let mid = tampered.find('.').unwrap() + 5;
    tampered.replace_range(
        mid..mid + 1,
        if &tampered[mid..mid + 1] == "A" {
            "B"
        } else {
            "A"
        },
    );
    for (what, token, error) in [
        (
            "expired",
            ts.token(&pull, -120, &ts.issuer, &ts.service),
            "invalid_token",
        ),
        (
            "wrong issuer",
            ts.token(&pull, 300, "someone-else", &ts.service),
            "invalid_token",
        ),
        (
            "wrong audience",
            ts.token(&pull, 300, &ts.issuer, "registry.test"),
            "invalid_token",
        ),
        ("bad signature", ts.forged_token(&pull), "invalid_token"),
        ("tampered", tampered, "invalid_token"),
        (
            "another repository",
            ts.token(&other, 300, &ts.issuer, &ts.service),
            "insufficient_scope",
        ),
    ] {
        let (st, ch, body) = get_with(&s, &s.tuf(GUN, "root.json"), Some(&token)).await;
        assert_eq!(st, 401, "{what}");
        assert!(ch.ends_with(&format!(",error=\"{error}\"")), "{what}: {ch}");
        assert_eq!(api_error(&body).0, "UNAUTHORIZED", "{what}");
    }
    // A repository token cannot use catalog-scoped routes.
    assert_eq!(
        get_with(&s, &format!("{}/v2/", s.url), Some(&good)).await.0,
        401
    );

    // Publish a repository with a push token (Rust client), then try writes with a pull token.
    let push_token = ts.token(&push_pull, 300, &ts.issuer, &ts.service);
    let key = |role: &str| {
        let (s, t) = (&s, push_token.clone());
        let role = role.to_string();
        async move {
            let r = s
                .http
                .get(s.tuf(GUN, &format!("{role}.key")))
                .bearer_auth(&t)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            notary_bench::repo::parse_key_response(&r.bytes().await.unwrap()).unwrap()
        }
    };
    let repo = RustRepo::new(GUN, key("snapshot").await, key("timestamp").await);
    let upload = |token: String, parts: Vec<(&'static str, Vec<u8>)>| {
        let s = &s;
        async move {
            let refs: Vec<(&str, &[u8])> = parts.iter().map(|(r, b)| (*r, b.as_slice())).collect();
            let (ct, body) = multipart(&refs);
            let r = s
                .http
                .post(s.tuf(GUN, ""))
                .header("content-type", ct)
                .bearer_auth(token)
                .body(body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
            )
        }
    };
    let (st, _) = upload(
        push_token.clone(),
        vec![
            ("root", repo.root_file(1)),
            ("targets", repo.targets_file(1, &[("a", b"a")])),
        ],
    )
    .await;
    assert_eq!(st, 200);
    let before = (
        get_with(&s, &s.tuf(GUN, "timestamp.json"), Some(&good)).await,
        get_with(&s, &s.tuf(GUN, "targets.json"), Some(&good)).await,
    );
    let (st, ch) = upload(
        good.clone(),
        vec![("targets", repo.targets_file(2, &[("b", b"b")]))],
    )
    .await;
    assert_eq!(st, 401);
    assert!(
        ch.contains(&format!("scope=\"repository:{GUN}:push,pull\""))
            && ch.ends_with(",error=\"insufficient_scope\""),
        "{ch}"
    );
    let r = s
        .http
        .delete(s.tuf(GUN, ""))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .delete(s.tuf(GUN, ""))
        .bearer_auth(&push_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "delete needs *");
    let after = (
        get_with(&s, &s.tuf(GUN, "timestamp.json"), Some(&good)).await,
        get_with(&s, &s.tuf(GUN, "targets.json"), Some(&good)).await,
    );
    assert_eq!(after, before, "nothing stored or deleted");
    assert_eq!(after.0 .0, 200);

    // Token-protected metadata is private: a shared cache must not serve it to anyone else.
    let targets_sha = notary_tuf::FileMeta::of(&after.1 .2).sha256_hex().unwrap();
    for file in [
        "timestamp.json".to_string(),
        format!("targets.{targets_sha}.json"),
        "1.root.json".to_string(),
    ] {
        let r = s
            .http
            .get(s.tuf(GUN, &file))
            .bearer_auth(&good)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{file}");
        let cc = r.headers()["cache-control"].to_str().unwrap().to_string();
        assert!(
            cc.starts_with("private, max-age=")
                && !cc.contains("public")
                && !cc.contains("s-maxage"),
            "{file}: {cc}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_cli_gets_tokens_from_the_realm() {
    let tmp = tempfile::tempdir().unwrap();
    let (_ts, s) = server_with_token_auth(tmp.path()).await;
    let owner = s.notary("owner");
    let f = write_file(s.tmp(), "a.txt", b"behind token auth\n");
    // Writes: the CLI asks for credentials and sends them to the realm.
    let creds = b"alice\nsecret\nalice\nsecret\nalice\nsecret\n";
    let r = owner.run_with_input(&["init", GUN], creds);
    assert!(r.ok, "{}", r.output());
    owner.ok(&["add", GUN, "v1", f.to_str().unwrap()]);
    let r = owner.run_with_input(&["publish", GUN], creds);
    assert!(r.ok, "{}", r.output());
    // Reads: an anonymous client gets a pull-only token.
    let list = s.notary("reader").ok(&["list", GUN]);
    assert!(list.contains("v1"), "{list}");
}

#[tokio::test]
async fn autoredirect_points_the_realm_at_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let ts = TokenService::new(tmp.path(), "notary.test");
    let mut auth = ts.auth_config();
    auth["options"]["realm"] = serde_json::json!("https://unused.example/token");
    auth["options"]["autoredirect"] = serde_json::json!(true);
    let s =
        Server::start_with_config(&create_pg_db().await, serde_json::json!({"auth": auth})).await;
    let (st, ch, _) = get_with(&s, &format!("{}/v2/", s.url), None).await;
    assert_eq!(st, 401);
    assert_eq!(
        ch,
        format!("Bearer realm=\"https://127.0.0.1:{}/auth/token\",service=\"notary.test\",scope=\"registry:catalog:*\"", s.port)
    );
}
