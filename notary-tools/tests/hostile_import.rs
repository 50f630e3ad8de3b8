//! `notary-server import` against a hostile source (`import::source`, its invariants 1–4): what
//! a source sends is bounded while it arrives, a history walk and a changefeed end, a crafted
//! trust directory neither hangs nor exhausts memory, untrusted names cannot forge output, and
//! credentials in a URL are refused. Each run must end within `DEADLINE`.
#![cfg(feature = "system-tests")]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// Run `cmd` to its end within `DEADLINE` (killed and failed otherwise); (ok, stdout+stderr).
fn run_bounded(mut cmd: Command) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > DEADLINE {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "still running after {DEADLINE:?}: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()),
        String::from_utf8_lossy(&std::fs::read(&err_path).unwrap())
    );
    (status.success(), text)
}

/// A minimal unsigned TUF file of `role` at `version` (what a hostile source may serve).
fn tuf_file(typ: &str, version: i64) -> Vec<u8> {
    format!(
        r#"{{"signed":{{"_type":"{typ}","version":{version},"expires":"2099-01-01T00:00:00Z","meta":{{}}}},"signatures":[]}}"#
    )
    .into_bytes()
}

fn hostile(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeHttp {
    let handler = Arc::new(handler);
    FakeHttp::start(Arc::new(move |req: Request| {
        let handler = handler.clone();
        Box::pin(async move { handler(&req.path) })
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_source_is_bounded_while_it_is_read() {
    let ours = Server::start().await;
    let gun = "example.com/hostile/source";
    let import = |url: &str, extra: &[&str]| {
        let mut cmd = ours.admin(&["import", "--from", url]);
        cmd.args(extra);
        run_bounded(cmd)
    };

    // An endless answer: refused at the file bound, naming the file and the flag.
    let endless = hostile(|path| {
        if path.ends_with("/timestamp.json") {
            Reply::Endless
        } else {
            Reply::status(404)
        }
    });
    let (ok, out) = import(&endless.url, &["--gun", gun, "--max-file-bytes", "4000000"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("timestamp.json")
            && out.contains("--max-file-bytes")
            && out.contains("4000000"),
        "{out}"
    );
    // The same, under the repository's bound.
    let (ok, out) = import(
        &endless.url,
        &["--gun", gun, "--max-repository-bytes", "2000000"],
    );
    assert!(!ok && out.contains("--max-repository-bytes"), "{out}");

    // A timestamp claiming version 999 999 999, and a source answering every older version
    // number with a file of that number: the walk stops at --max-versions.
    let counting = hostile(|path| {
        let file = path.rsplit('/').next().unwrap_or_default();
        if file == "timestamp.json" {
            return Reply::ok(tuf_file("Timestamp", 999_999_999));
        }
        match file
            .strip_suffix(".timestamp.json")
            .and_then(|v| v.parse::<i64>().ok())
        {
            Some(v) => Reply::ok(tuf_file("Timestamp", v)),
            None => Reply::status(404),
        }
    });
    let (ok, out) = import(&counting.url, &["--gun", gun, "--max-versions", "50"]);
    assert!(
        !ok && out.contains("more than 50 versions") && out.contains("--max-versions"),
        "{out}"
    );
    assert!(counting.hits() < 60, "{} requests", counting.hits());

    // A source answering every version number with the same newest file: refused at once.
    let lying = hostile(|path| {
        if path.ends_with("timestamp.json") {
            Reply::ok(tuf_file("Timestamp", 999_999_999))
        } else {
            Reply::status(404)
        }
    });
    let (ok, out) = import(&lying.url, &["--gun", gun]);
    assert!(!ok && out.contains("says it is version 999999999"), "{out}");
    assert!(lying.hits() < 5, "{} requests", lying.hits());

    // A changefeed that serves the same page forever: refused, not walked forever.
    let stuck = hostile(|path| {
        if path.starts_with("/v2/_trust/changefeed") {
            Reply::ok(
                r#"{"count":1,"records":[{"ID":"7","CreatedAt":"2026-01-01T00:00:00Z","GUN":"a/b","Version":1,"SHA256":"","Category":"update"}]}"#,
            )
        } else {
            Reply::status(404)
        }
    });
    let (ok, out) = import(&stuck.url, &["--all"]);
    assert!(
        !ok && out.contains("does not advance past change 7"),
        "{out}"
    );
    assert!(stuck.hits() < 5, "{} requests", stuck.hits());

    // Credentials in the URL: refused, and never printed.
    let (ok, out) = import(
        &format!("http://user:s3cr3t@{}", &lying.url["http://".len()..]),
        &["--gun", gun],
    );
    assert!(
        !ok && out.contains("credentials in the URL are not accepted"),
        "{out}"
    );
    assert!(!out.contains("s3cr3t"), "{out}");

    // Nothing of any of it was stored.
    let (ok, out) = run_bounded(ours.admin(&["repos"]));
    assert!(ok && out.contains("0 repositories"), "{out}");
}

#[tokio::test]
async fn a_hostile_trust_directory_is_refused_cleanly() {
    let ours = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tuf = dir.path().join("tuf");
    // Links to /dev/zero and out of the tree, a FIFO, a link loop.
    let a = tuf.join("example.com/hostile/links/metadata");
    std::fs::create_dir_all(&a).unwrap();
    std::os::unix::fs::symlink("/dev/zero", a.join("root.json")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", a.join("targets.json")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(a.join("snapshot.json"))
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink("..", a.join("loop")).unwrap();
    std::os::unix::fs::symlink(dir.path(), tuf.join("example.com/hostile/up")).unwrap();
    // A 3 GiB (sparse) file.
    let b = tuf.join("example.com/hostile/huge/metadata");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("root.json"), tuf_file("Root", 1)).unwrap();
    let huge = std::fs::File::create(b.join("timestamp.json")).unwrap();
    huge.set_len(3 << 30).unwrap();
    // A GUN whose name would forge a progress line and move the cursor.
    let forged = "example.com/x\n[9/9] example.com/trusted: imported (7 files)\u{1b}[1A";
    let c = tuf.join(forged).join("metadata");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("root.json"), tuf_file("Root", 1)).unwrap();

    let mut cmd = ours.admin(&["import", "--from-trust-dir"]);
    cmd.arg(dir.path()).arg("--all");
    let (ok, out) = run_bounded(cmd);
    assert!(!ok, "{out}");
    assert!(
        out.contains("example.com/hostile/huge") && out.contains("--max-file-bytes"),
        "{out}"
    );
    assert!(out.contains("example.com/hostile/links: failed"), "{out}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(
        !out.lines().any(|l| l.starts_with("[9/9]")),
        "a GUN forged a line: {out}"
    );
    assert!(out.contains("example.com/x\\n[9/9]"), "{out}");
    let (ok, out) = run_bounded(ours.admin(&["repos"]));
    assert!(ok && out.contains("0 repositories"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_realms_are_not_trusted_blindly() {
    // An https source whose realm is plain http: refused unless allowed.
    let tmp = tempfile::tempdir().unwrap();
    let (_ts, source) = server_with_token_auth(tmp.path()).await;
    let ours = Server::start().await;
    let mut cmd = ours.admin(&["import", "--from", &source.url, "--gun", "example.com/a"]);
    cmd.arg("--tlscacert").arg(&source.ca);
    let (ok, out) = run_bounded(cmd);
    assert!(
        !ok && out.contains("plain-http token realm")
            && out.contains("--allow-insecure-token-realm"),
        "{out}"
    );

    // A realm on another host than the source: credentials go there only when allowed.
    let seen: Arc<std::sync::Mutex<Vec<Option<String>>>> = Default::default();
    let log = seen.clone();
    let realm = FakeHttp::start(Arc::new(move |req: Request| {
        log.lock().unwrap().push(req.authorization.clone());
        Box::pin(async { Reply::status(401) })
    }));
    let realm_url = realm.url.replace("127.0.0.1", "localhost") + "/token";
    let source = FakeHttp::start(Arc::new(move |_req: Request| {
        let challenge = format!("Bearer realm=\"{realm_url}\",service=\"notary.test\"");
        Box::pin(async move {
            Reply::Bytes(
                401,
                vec![("www-authenticate".into(), challenge)],
                Vec::new(),
            )
        })
    }));
    let import = |extra: &[&str]| {
        let mut cmd = ours.admin(&[
            "import",
            "--from",
            &source.url,
            "--gun",
            "example.com/a",
            "--username",
            "alice",
        ]);
        cmd.args(extra).env("NOTARY_IMPORT_PASSWORD", "s3cr3t");
        run_bounded(cmd)
    };
    let (ok, out) = import(&[]);
    assert!(
        !ok && out.contains("another host (localhost)")
            && out.contains("--allow-token-host localhost"),
        "{out}"
    );
    assert!(!out.contains("s3cr3t"), "{out}");
    {
        let seen = seen.lock().unwrap();
        assert!(!seen.is_empty(), "the anonymous request went to the realm");
        assert!(
            seen.iter().all(Option::is_none),
            "no credentials sent: {seen:?}"
        );
    }
    let (ok, out) = import(&["--allow-token-host", "localhost"]);
    assert!(!ok, "{out}");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|a| a.as_deref().is_some_and(|a| a.starts_with("Basic "))),
        "allowed: the credentials were sent"
    );
}

/// A long history of large files is verified and stored in memory of about one file (the
/// import keeps the files on disk, `import::spill`): 12 versions of a 4 MB targets file, about
/// 50 MB in all, imported from our own server with the peak memory of the import sampled
/// (before the spill it held each file three to four times over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_history_is_imported_in_bounded_memory() {
    let source = Server::start().await;
    let gun = "example.com/hostile/large";
    let repo = init_repo(&source, gun).await;
    let names: Vec<String> = (0..20_000).map(|i| format!("image-{i:06}")).collect();
    let mut history_bytes = 0usize;
    let mut largest = 0usize;
    for v in 2..=13 {
        let mut targets: Vec<(&str, &[u8])> =
            names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let tag = format!("v{v}");
        targets.push((&tag, b"new"));
        let file = repo.targets_file(v, &targets);
        history_bytes += file.len();
        largest = largest.max(file.len());
        let (st, body) = source.post_parts(gun, &[("targets", &file)]).await;
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    }
    assert!(history_bytes > 40 << 20, "{history_bytes} bytes of history");

    let dest = Server::start().await;
    let mut cmd = dest.admin(&["import", "--from", &source.url, "--gun", gun]);
    cmd.arg("--tlscacert")
        .arg(&source.ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while let Some(kib) = peak_memory_kib(pid) {
            peak = peak.max(kib);
            std::thread::sleep(Duration::from_millis(5));
        }
        peak
    });
    let out = child.wait_with_output().unwrap();
    let peak_mib = sampler.join().unwrap() >> 10;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        dest.get(&dest.tuf(gun, "targets.json")).await,
        source.get(&source.tuf(gun, "targets.json")).await
    );
    assert_eq!(dest.get(&dest.tuf(gun, "2.targets.json")).await.0, 200);
    // Held at once: about one file (its bytes and parsed forms), not the history.
    let bound_mib = (12 * (largest >> 20) + 48) as u64;
    assert!(
        peak_mib < bound_mib,
        "the import peaked at {peak_mib} MiB for {} MiB of history ({} MiB the largest file; bound {bound_mib} MiB)",
        history_bytes >> 20,
        largest >> 20
    );
    report_figures(
        "hostile_import",
        &format!(
            "import of {} MiB of history ({} MiB the largest file): peak memory {peak_mib} MiB",
            history_bytes >> 20,
            largest >> 20
        ),
    );
}
