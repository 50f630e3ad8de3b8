//! Large metadata served gzip to clients that accept it (`notary-server/src/compression.rs`):
//! the bytes inflate to exactly the stored file, caches are told (`Vary`), validators still
//! work, and Go's notary CLI — whose HTTP client asks for gzip — reads a repository with
//! thousands of targets through the compressed responses. Postgres stores the large file lz4.
#![cfg(feature = "system-tests")]

mod common;

use std::io::Read;

use common::*;

fn response_bytes(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("notary_server_http_response_size_bytes_sum{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_clients_read_compressed_metadata() {
    let s = Server::start_backend(Backend::Postgres).await;
    let gun = "example.com/gzip/large";
    let repo = init_repo(&s, gun).await;
    let names: Vec<String> = (0..3000).map(|i| format!("release-{i:05}")).collect();
    let targets: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), n.as_bytes())).collect();
    let file = repo.targets_file(2, &targets);
    assert!(file.len() > 300_000);
    let (st, _) = s.post_parts(gun, &[("targets", &file)]).await;
    assert_eq!(st, 200);

    // Postgres compressed the stored copy with lz4 (the session setting every connection of
    // ours makes: a fraction of pglz's CPU on a large publish), and it reads back as sent.
    let db = sqlx::PgPool::connect(s.db_url.as_deref().unwrap())
        .await
        .unwrap();
    let (method, stored): (Option<String>, Vec<u8>) = sqlx::query_as(
        "SELECT pg_column_compression(data), data FROM tuf_files WHERE gun = $1 AND role = 'targets' AND version = 2",
    )
    .bind(gun)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(method.as_deref(), Some("lz4"));
    assert_eq!(stored, file);

    // Identity: the exact bytes, a strong ETag, Vary.
    let plain = s.http.get(s.tuf(gun, "targets.json")).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["vary"], "Accept-Encoding");
    let etag = plain.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"'));
    assert_eq!(plain.bytes().await.unwrap(), file);

    // gzip: smaller, inflates to the same bytes; a weak ETag that revalidates.
    let gz = s
        .http
        .get(s.tuf(gun, "targets.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["etag"].to_str().unwrap(), format!("W/{etag}"));
    let body = gz.bytes().await.unwrap();
    // The hashes (random bytes, base64) do not compress; the JSON around them does.
    assert!(
        body.len() < file.len() * 3 / 4,
        "{} of {}",
        body.len(),
        file.len()
    );
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated, file);
    for tag in [etag.clone(), format!("W/{etag}")] {
        let r = s
            .http
            .get(s.tuf(gun, "targets.json"))
            .header("accept-encoding", "gzip")
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{tag}");
        assert!(r.headers().get("content-encoding").is_none());
    }
    // Small files are never compressed; gzip;q=0 is a refusal.
    let ts = s
        .http
        .get(s.tuf(gun, "timestamp.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(ts.headers().get("content-encoding").is_none());
    assert!(ts.headers().get("vary").is_none());
    let refused = s
        .http
        .get(s.tuf(gun, "targets.json"))
        .header("accept-encoding", "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get("content-encoding").is_none());

    // The Go CLI (a fresh client: root, timestamp, snapshot, targets) lists every target, and
    // what the server sent it was the compressed copy.
    let (_, m) = s.get(&format!("{}/metrics", s.url)).await;
    let before = response_bytes(&String::from_utf8_lossy(&m));
    let tmp = tempfile::tempdir().unwrap();
    let listed = s
        .notary(tmp.path().join("fresh").to_str().unwrap())
        .ok(&["list", gun]);
    assert_eq!(
        listed.lines().filter(|l| l.contains("release-")).count(),
        names.len(),
        "{listed}"
    );
    let (_, m) = s.get(&format!("{}/metrics", s.url)).await;
    let sent = response_bytes(&String::from_utf8_lossy(&m)) - before;
    assert!(
        sent < file.len() as f64 * 0.75,
        "the Go client was sent {sent} bytes for a {}-byte targets.json",
        file.len()
    );
}
