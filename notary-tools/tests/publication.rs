//! Static publication (`notary-server/src/publication/`): the real Go notary CLI reads through
//! nginx serving the published directory and through moto's S3 endpoint, with nothing of
//! ours in between; the tree follows writes in TUF's order, is repaired by `export`, and is
//! completed by the next instance when one dies half-way.
#![cfg(feature = "system-tests")]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// How often the tests' servers check the changefeed.
const INTERVAL_MS: u64 = 200;
/// The bound a client may wait for a write to reach the tree, as documented
/// (`docs/static-publication.md`): the check interval plus a sync; generous on a loaded machine.
const BOUND: Duration = Duration::from_secs(10);

/// nginx serving `root` on a free port, with the configuration `docs/static-publication.md`
/// gives (read from there, so that the documented config is the tested one).
struct Nginx {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx serving `root` with the documented block, over TLS with `tls` (certificate, key)
    /// when given (plain HTTP otherwise), with `extra` (more `server` blocks,
    /// `{tls}` standing for the TLS directives) in the `http` block.
    fn start_with(root: &Path, tls: Option<(&Path, &Path)>, extra: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/static-publication.md"),
        )
        .unwrap();
        let tls_directives = match tls {
            Some((cert, key)) => format!(
                "ssl_certificate {};\n ssl_certificate_key {};",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        let listen = if tls.is_some() {
            format!("listen 127.0.0.1:{port} ssl;\n {tls_directives}")
        } else {
            format!("listen 127.0.0.1:{port};")
        };
        let server_block = doc
            .split("```nginx\n")
            .nth(1)
            .and_then(|s| s.split("```").next())
            .expect("docs/static-publication.md has an nginx block")
            .replace("listen 80;", &listen)
            .replace("/srv/notary", root.to_str().unwrap());
        let extra = extra.replace("{tls}", &tls_directives);
        let conf = format!(
            "daemon off;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n include /etc/nginx/mime.types;\n access_log off;\n client_body_temp_path {d}/tmp;\n\
             proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n\
             {server_block}\n{extra}\n}}\n",
            d = dir.path().display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .args(["-c", dir.path().join("nginx.conf").to_str().unwrap()])
            .args(["-g", "user root;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx must be installed (Debian package nginx-light); .ci/run installs it");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        wait_for_port(port, "nginx");
        Nginx {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM, not KILL: the master stops its workers (killed, it would leave them running).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A Go notary CLI reading from `url` (a static tree) with the trust folder `dir`.
/// (Plain HTTP: the CLI reads the CA file given, any, but uses it for nothing.)
fn reader(url: &str, s: &Server, dir: &str) -> Notary {
    Notary {
        server: url.to_string(),
        ca: s.ca.clone(),
        dir: s.tmp().join(dir),
    }
}

/// Wait until `notary list` from the tree shows `target`; how long it took.
async fn appears(r: &Notary, gun: &str, target: &str, since: Instant) -> Duration {
    eventually(BOUND, Duration::from_millis(50), async || {
        let run = r.run(&["list", gun]);
        if run.ok && run.stdout.contains(target) {
            Ok(since.elapsed())
        } else {
            Err(run.output())
        }
    })
    .await
}

/// Every file of the repository's folder in the tree (relative path, bytes).
fn tree_files(root: &Path, gun: &str) -> Vec<(String, Vec<u8>)> {
    let base = root.join(format!("v2/{gun}/_trust/tuf"));
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        // (The publisher may be writing or removing files meanwhile: one that goes while it
        // is listed, and the hidden temporary files of writes, are left out.)
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                let rel = p.strip_prefix(&base).unwrap().to_str().unwrap().to_string();
                if let Ok(bytes) = std::fs::read(&p) {
                    out.push((rel, bytes));
                }
            }
        }
    }
    out.sort();
    out
}

fn admin_ok(s: &Server, args: &[&str]) -> String {
    let out = s.admin(args).output().unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "notary-server {args:?}: {text}");
    text
}

/// The Go CLI reads a repository through nginx serving the directory our server publishes:
/// list and verify; a target published a moment ago appears within the bound; an old trust
/// cache follows a root rotation; every file is the server's bytes; a tampered timestamp is
/// refused by the client and repaired by `export`; a deleted repository is gone.
#[tokio::test(flavor = "multi_thread")]
async fn the_go_client_reads_the_published_directory_through_nginx() {
    let trees = tempfile::tempdir().unwrap();
    let root = trees.path().join("srv");
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"publish": {"directory": root, "interval_ms": INTERVAL_MS}}),
    )
    .await;
    // The same tree under a path prefix too, as docs/static-publication.md says to serve it.
    let prefixed = free_port();
    let nginx = Nginx::start_with(
        &root,
        None,
        &format!(
            "server {{ listen 127.0.0.1:{prefixed}; location /notary/ {{ alias {}/; index index.html; }} }}",
            root.display()
        ),
    );
    let gun = "example.com/app";
    let n = s.notary("writer");
    let content = b"published statically\n";
    let f = write_file(s.tmp(), "t.txt", content);
    n.ok(&["init", gun]);
    n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    let t0 = Instant::now();
    n.ok(&["publish", gun]);
    let r = reader(&nginx.url, &s, "reader");
    let first = appears(&r, gun, "v1", t0).await;
    let v = r.run_with_input(&["verify", gun, "v1"], content);
    assert!(v.ok, "verify through nginx: {}", v.output());
    let under_prefix = reader(
        &format!("http://127.0.0.1:{prefixed}/notary"),
        &s,
        "prefixed",
    );
    let list = under_prefix.ok(&["list", gun]);
    assert!(list.contains("v1"), "{list}");

    // A target published a moment ago appears within the bound.
    n.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    let t1 = Instant::now();
    n.ok(&["publish", gun]);
    let second = appears(&r, gun, "v2", t1).await;
    // The documented cache headers: short for current files, long for the others.
    for (file, cache) in [
        ("timestamp.json", "public, max-age=10"),
        ("1.root.json", "public, max-age=31536000, immutable"),
    ] {
        let got = reqwest::get(format!("{}/v2/{gun}/_trust/tuf/{file}", nginx.url))
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "{file}");
        let header = got
            .headers()
            .get("cache-control")
            .map(|h| h.to_str().unwrap().to_string());
        assert_eq!(header.as_deref(), Some(cache), "{file}");
    }

    // Byte for byte what the server serves, for every file of the tree.
    let files = tree_files(&root, gun);
    assert!(files.iter().any(|(p, _)| p == "timestamp.json"));
    assert!(files.iter().any(|(p, _)| p.starts_with("2.targets")));
    for (path, bytes) in &files {
        let (code, served) = s.get(&s.tuf(gun, path)).await;
        assert_eq!((code, &served), (200, bytes), "{path}");
    }

    // An old trust cache across a root rotation.
    // (The CLI asks before rotating a root key.)
    let rotated = n.run_with_input(&["key", "rotate", gun, "root"], b"yes\n");
    assert!(rotated.ok, "{}", rotated.output());
    // And a key rotation the server makes (a new timestamp key, in root version 3).
    n.ok(&["key", "rotate", gun, "timestamp", "-r"]);
    n.ok(&["add", gun, "v3", f.to_str().unwrap()]);
    let t2 = Instant::now();
    n.ok(&["publish", gun]);
    appears(&r, gun, "v3", t2).await;
    assert!(
        root.join(format!("v2/{gun}/_trust/tuf/2.root.json"))
            .is_file(),
        "the new root is published"
    );

    // A tampered timestamp is refused by the client, from a fresh cache too; `export`
    // repairs the tree.
    let ts = root.join(format!("v2/{gun}/_trust/tuf/timestamp.json"));
    let good = std::fs::read(&ts).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    // A year more of validity, as a server trying to keep a stale timestamp alive would.
    let at = text.find("\"expires\":\"").unwrap() + "\"expires\":\"".len();
    let year: u32 = text[at..at + 4].parse().unwrap();
    let tampered = format!("{}{}{}", &text[..at], year + 1, &text[at + 4..]);
    std::fs::write(&ts, tampered.as_bytes()).unwrap();
    let fresh = reader(&nginx.url, &s, "fresh");
    let refused = fresh.run(&["list", gun]);
    assert!(
        !refused.ok,
        "a tampered timestamp must be refused: {}",
        refused.output()
    );
    let repaired = admin_ok(&s, &["export"]);
    assert!(repaired.contains("1 files written"), "{repaired}");
    assert_eq!(std::fs::read(&ts).unwrap(), good);
    let list = fresh.ok(&["list", gun]);
    assert!(list.contains("v3"), "{list}");

    // A deleted repository disappears, timestamp first.
    admin_ok(&s, &["delete", gun, "--reason", "test"]);
    eventually(BOUND, Duration::from_millis(50), async || {
        let left = tree_files(&root, gun);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{} files left", left.len()))
        }
    })
    .await;
    // (A client with a cache goes on with it, as Go's does when its server answers 404.)
    let gone = reader(&nginx.url, &s, "after-deletion").run(&["list", gun]);
    assert!(!gone.ok, "{}", gone.output());
    let ping = reqwest::get(format!("{}/v2/", nginx.url)).await.unwrap();
    assert_eq!(ping.status(), 200, "the tree answers the Go client's ping");
    report_figures(
        "publication directory",
        &format!(
            "write to tree (publish returned → `notary list` through nginx shows it): {} ms, {} ms (check every {INTERVAL_MS} ms)",
            first.as_millis(),
            second.as_millis()
        ),
    );
}

/// An instance that dies half-way through a sync leaves the old timestamp in place (no reader
/// is sent to a missing file) and the next instance completes the tree.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_sync_is_completed_by_the_next_instance() {
    let trees = tempfile::tempdir().unwrap();
    let root = trees.path().join("srv");
    let db = create_pg_db().await;
    let publish = serde_json::json!({"publish": {"directory": root, "interval_ms": INTERVAL_MS}});
    let mut a = Server::start_with_config(&db, publish.clone()).await;
    let gun = "example.com/halfway";
    let n = a.notary("writer");
    let f = write_file(a.tmp(), "t.txt", b"x\n");
    n.ok(&["init", gun]);
    n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    let folder = root.join(format!("v2/{gun}/_trust/tuf"));
    let ts = folder.join("timestamp.json");
    eventually(BOUND, Duration::from_millis(50), async || {
        if ts.exists() {
            Ok(())
        } else {
            Err("no timestamp.json".to_string())
        }
    })
    .await;
    let old_ts = std::fs::read(&ts).unwrap();
    // The next version of targets cannot be written (a folder stands at its name): the sync
    // fails after writing some files.
    let newest = tree_files(&root, gun)
        .iter()
        .filter_map(|(p, _)| p.strip_suffix(".targets.json")?.parse::<u32>().ok())
        .max()
        .unwrap();
    let blocker = folder.join(format!("{}.targets.json", newest + 1));
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    n.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    eventually(BOUND, Duration::from_millis(50), async || {
        if a.log().contains("static publication: sync failed") {
            Ok(())
        } else {
            Err(a.log())
        }
    })
    .await;
    // Operators see it in /metrics.
    let (_, metrics) = a.get(&format!("{}/metrics", a.url)).await;
    let metrics = String::from_utf8(metrics).unwrap();
    let failed = metric_sample(
        &metrics,
        "notary_rs_publication_rounds_total{result=\"failed\"}",
    );
    assert!(failed.is_some_and(|n| n != "0"), "{metrics}");
    assert_eq!(
        std::fs::read(&ts).unwrap(),
        old_ts,
        "the old timestamp stays until every file it names is there"
    );
    a.signal("KILL");
    a.stop();
    std::fs::remove_dir_all(&blocker).unwrap();
    let b = Server::start_with_config(&db, publish).await;
    eventually(BOUND, Duration::from_millis(50), async || {
        if std::fs::read(&ts).unwrap() != old_ts && blocker.is_file() {
            Ok(())
        } else {
            Err(b.log())
        }
    })
    .await;
    for (path, bytes) in tree_files(&root, gun) {
        let (code, served) = b.get(&b.tuf(gun, &path)).await;
        assert_eq!((code, served), (200, bytes), "{path}");
    }
    let (_, metrics) = b.get(&format!("{}/metrics", b.url)).await;
    let metrics = String::from_utf8(metrics).unwrap();
    let synced = metric_sample(&metrics, "notary_rs_publication_last_synced_seconds");
    assert!(synced.is_some_and(|t| t != "0"), "{metrics}");
}

/// The Go CLI reads through moto's S3 endpoint, under a key prefix, what our server publishes
/// to the bucket (the AWS SDK, credentials from the environment).
#[tokio::test(flavor = "multi_thread")]
async fn the_go_client_reads_the_published_bucket() {
    let moto = Moto::start();
    moto.bucket("trust");
    let http = reqwest::Client::new();
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"publish": {"s3": {"bucket": "trust", "endpoint": moto.url, "region": "us-east-1", "prefix": "notary/"}, "interval_ms": INTERVAL_MS}}),
    )
    .await;
    let gun = "example.com/bucketed";
    let n = s.notary("writer");
    let content = b"in a bucket\n";
    let f = write_file(s.tmp(), "t.txt", content);
    n.ok(&["init", gun]);
    n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    let t0 = Instant::now();
    n.ok(&["publish", gun]);
    let tree = format!("{}/trust/notary", moto.url);
    let r = reader(&tree, &s, "reader");
    let took = appears(&r, gun, "v1", t0).await;
    let v = r.run_with_input(&["verify", gun, "v1"], content);
    assert!(v.ok, "verify through S3: {}", v.output());
    // Byte for byte, with the cache headers a CDN follows.
    for (file, cache) in [
        ("timestamp.json", "max-age=10"),
        ("1.root.json", "immutable"),
    ] {
        let got = http
            .get(format!("{tree}/v2/{gun}/_trust/tuf/{file}"))
            .send()
            .await
            .unwrap();
        let header = got
            .headers()
            .get("cache-control")
            .map(|h| h.to_str().unwrap().to_string());
        assert!(
            header.as_deref().unwrap_or("").contains(cache),
            "{file}: {header:?}"
        );
        let (_, served) = s.get(&s.tuf(gun, file)).await;
        assert_eq!(got.bytes().await.unwrap().to_vec(), served, "{file}");
    }
    n.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    let t1 = Instant::now();
    n.ok(&["publish", gun]);
    let second = appears(&r, gun, "v2", t1).await;
    // An old trust cache across a root rotation.
    let rotated = n.run_with_input(&["key", "rotate", gun, "root"], b"yes\n");
    assert!(rotated.ok, "{}", rotated.output());
    n.ok(&["add", gun, "v3", f.to_str().unwrap()]);
    let t2 = Instant::now();
    n.ok(&["publish", gun]);
    appears(&r, gun, "v3", t2).await;
    admin_ok(&s, &["delete", gun, "--reason", "test"]);
    eventually(BOUND, Duration::from_millis(100), async || {
        let code = http
            .get(format!("{tree}/v2/{gun}/_trust/tuf/timestamp.json"))
            .send()
            .await
            .unwrap()
            .status();
        if code == 404 {
            Ok(())
        } else {
            Err(code.to_string())
        }
    })
    .await;
    report_figures(
        "publication s3",
        &format!(
            "write to bucket (publish returned → `notary list` through moto shows it): {} ms, {} ms",
            took.as_millis(),
            second.as_millis()
        ),
    );
}

/// A tree has no access control: with `gun_prefixes`, only the repositories they name are
/// published, and `export` removes any other a tree holds.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_named_repositories_are_published() {
    let trees = tempfile::tempdir().unwrap();
    let root = trees.path().join("srv");
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"publish": {"directory": root, "interval_ms": INTERVAL_MS, "gun_prefixes": ["example.com/public/"]}}),
    )
    .await;
    let n = s.notary("writer");
    for gun in ["example.com/public/app", "example.com/private/app"] {
        n.ok(&["init", gun]);
        n.ok(&["publish", gun]);
    }
    let public = root.join("v2/example.com/public/app/_trust/tuf/timestamp.json");
    eventually(BOUND, Duration::from_millis(50), async || {
        if public.is_file() {
            Ok(())
        } else {
            Err("not published".to_string())
        }
    })
    .await;
    let private = root.join("v2/example.com/private/app/_trust/tuf");
    assert!(
        !private.exists(),
        "a repository outside the prefixes is not published"
    );
    // One copied in by hand is removed by a repair.
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(private.join("timestamp.json"), b"{}").unwrap();
    admin_ok(&s, &["export"]);
    assert!(!private.join("timestamp.json").exists());
    assert!(public.is_file());
}

/// `docker pull` with content trust (the real docker CLI and engine, a loopback registry)
/// reads the signatures from nginx serving an exported directory, and from moto's bucket
/// behind nginx as a CDN would front it (docker requires an https trust server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pulls_with_trust_from_the_tree() {
    let moto = Moto::start();
    moto.bucket("dockertrust");
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"publish": {"s3": {"bucket": "dockertrust", "endpoint": moto.url, "prefix": "notary"}, "interval_ms": INTERVAL_MS}}),
    )
    .await;
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let pusher = DockerCli::new(&tmp.path().join("push"), &s);
    let image = format!("127.0.0.1:{}/static/app{}:v1", reg.port, std::process::id());
    pusher.make_image(tmp.path(), &image, "statically trusted\n");
    let out = pusher.ok(true, &["push", &image]);
    assert!(out.contains("Successfully signed"), "{out}");

    // The exported directory, and the bucket through a TLS front, on one nginx.
    let exported = tmp.path().join("exported");
    admin_ok(&s, &["export", "--to", exported.to_str().unwrap()]);
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("nginx-tls")).unwrap();
    let front = free_port();
    let moto_host = moto.url.trim_start_matches("http://").to_string();
    let nginx = Nginx::start_with(
        &exported,
        Some((&tls.cert, &tls.key)),
        &format!(
            "server {{\n listen 127.0.0.1:{front} ssl;\n {{tls}}\n location / {{ proxy_pass http://{moto_host}/dockertrust/notary/; }}\n}}"
        ),
    );
    wait_for_port(front, "the TLS front");
    let fronted = format!("https://127.0.0.1:{front}");
    for (name, url) in [("directory", nginx.url.clone()), ("bucket", fronted)] {
        let puller = DockerCli::for_notary(&tmp.path().join(name), &url, &tls.ca);
        pusher.forget_image(&image);
        let out = eventually(BOUND, Duration::from_millis(200), async || {
            let (ok, out) = puller.run(true, &["pull", &image], b"");
            if ok {
                Ok(out)
            } else {
                Err(out)
            }
        })
        .await;
        assert!(out.contains("Tagging"), "{name}: {out}");
    }
}

/// Two instances publish one tree (one at a time, by its lock) while both re-sign timestamps
/// in the background: whenever a reader reads the tree's timestamp, the snapshot it names is
/// there; the tree follows the re-signs, and a prune removes the pruned versions from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_keep_one_tree_through_resigns_and_a_prune() {
    let trees = tempfile::tempdir().unwrap();
    let root = trees.path().join("srv");
    let db = create_pg_db().await;
    let cfg = serde_json::json!({
        "publish": {"directory": root, "interval_ms": INTERVAL_MS},
        "caching": {"resign_before_expiry_seconds": 14 * 86400 - 2, "resign_check_seconds": 1}
    });
    let a = Server::start_with_config(&db, cfg.clone()).await;
    let b = Server::start_with_config(&db, cfg).await;
    let gun = "example.com/resigned";
    init_repo(&a, gun).await;
    let folder = root.join(format!("v2/{gun}/_trust/tuf"));
    let end = Instant::now() + Duration::from_secs(8);
    let mut newest = 0;
    while Instant::now() < end {
        if let Ok(ts) = std::fs::read(folder.join("timestamp.json")) {
            let sha = snapshot_sha_from_timestamp(&ts);
            assert!(
                folder.join(format!("snapshot.{sha}.json")).is_file(),
                "the tree's timestamp names a snapshot the tree does not hold"
            );
            newest = newest.max(version_of(&ts));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        newest >= 3,
        "the tree followed the re-signs: timestamp v{newest}"
    );
    assert!(folder.join("1.timestamp.json").is_file());
    let out = a
        .admin(&["prune", "--keep-versions", "1", "--keep-days", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    eventually(BOUND, Duration::from_millis(50), async || {
        if folder.join("1.timestamp.json").exists() {
            Err("1.timestamp.json is still in the tree".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    let logs = format!("{}{}", a.log(), b.log());
    assert!(!logs.contains("sync failed"), "{logs}");
}
