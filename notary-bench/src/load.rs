//! The load driver: seeds repositories through the real API, then times GETs and publishes at
//! a given concurrency and reports throughput and latency percentiles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::repo::{multipart, parse_key_response, RustRepo};

#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub http: reqwest::Client,
}

impl Endpoint {
    pub fn new(url: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Endpoint> {
        let mut b = reqwest::Client::builder().pool_max_idle_per_host(1024).timeout(Duration::from_secs(30));
        if let Some(pem) = ca_pem {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(pem)?);
        }
        Ok(Endpoint { url: url.trim_end_matches('/').to_string(), http: b.build()? })
    }

    pub fn tuf(&self, gun: &str, file: &str) -> String {
        format!("{}/v2/{gun}/_trust/tuf/{file}", self.url)
    }

    async fn get_ok(&self, url: &str) -> anyhow::Result<Vec<u8>> {
        let r = self.http.get(url).send().await?;
        if r.status() != 200 {
            bail!("GET {url}: {}", r.status());
        }
        Ok(r.bytes().await?.to_vec())
    }

    async fn post(&self, gun: &str, parts: &[(&str, &[u8])]) -> anyhow::Result<()> {
        let (ct, body) = multipart(parts);
        let r = self.http.post(self.tuf(gun, "")).header("content-type", ct).body(body).send().await?;
        if r.status() != 200 {
            let st = r.status();
            bail!("POST {gun}: {st} {}", String::from_utf8_lossy(&r.bytes().await.unwrap_or_default()));
        }
        Ok(())
    }
}

/// A seeded repository and what the reads need to address it.
pub struct Seeded {
    pub repo: RustRepo,
    pub next_version: i64,
    pub snapshot_sha: String,
    pub targets_sha: String,
}

/// The hex SHA-256 a timestamp or snapshot lists for `role`.
pub fn meta_sha(file: &[u8], role: &str) -> anyhow::Result<String> {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(file)?;
    let b64 = v["signed"]["meta"][role]["hashes"]["sha256"].as_str().context("meta sha256")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Create `guns` repositories with `targets` targets each (root + targets uploaded; the server
/// makes snapshot and timestamp).
pub async fn seed(ep: &Endpoint, prefix: &str, guns: usize, targets: usize, concurrency: usize) -> anyhow::Result<Vec<Seeded>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (ep, next, prefix) = (ep.clone(), next.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= guns {
                    return Ok::<_, anyhow::Error>(out);
                }
                let gun = format!("{prefix}/repo{i}");
                let ts = parse_key_response(&ep.get_ok(&ep.tuf(&gun, "timestamp.key")).await?).context("timestamp key")?;
                let sn = parse_key_response(&ep.get_ok(&ep.tuf(&gun, "snapshot.key")).await?).context("snapshot key")?;
                let repo = RustRepo::new(&gun, sn, ts);
                let contents: Vec<(String, Vec<u8>)> =
                    (0..targets).map(|t| (format!("tag{t}"), format!("{gun} content {t}").into_bytes())).collect();
                let refs: Vec<(&str, &[u8])> = contents.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
                ep.post(&gun, &[("root", &repo.root_file(1)), ("targets", &repo.targets_file(1, &refs))]).await?;
                let ts_file = ep.get_ok(&ep.tuf(&gun, "timestamp.json")).await?;
                let snapshot_sha = meta_sha(&ts_file, "snapshot")?;
                let snap = ep.get_ok(&ep.tuf(&gun, &format!("snapshot.{snapshot_sha}.json"))).await?;
                let targets_sha = meta_sha(&snap, "targets")?;
                out.push(Seeded { repo, next_version: 2, snapshot_sha, targets_sha });
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by(|a, b| a.repo.gun.cmp(&b.repo.gun));
    Ok(all)
}

#[derive(Debug, Clone)]
pub struct Stats {
    pub name: String,
    pub ok: usize,
    pub errors: usize,
    pub elapsed: Duration,
    /// Sorted latencies in microseconds.
    pub micros: Vec<u64>,
}

impl Stats {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn pct_ms(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let i = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        self.micros[i] as f64 / 1000.0
    }
}

/// Run `requests` GETs over `urls` (round robin) with `concurrency` workers. With `etag`, each
/// request revalidates with `If-None-Match` and a 304 counts as success.
pub async fn run_gets(
    ep: &Endpoint,
    name: &str,
    urls: Vec<String>,
    requests: usize,
    concurrency: usize,
    revalidate: bool,
) -> anyhow::Result<Stats> {
    let mut etags = Vec::new();
    if revalidate {
        for u in &urls {
            let r = ep.http.get(u).send().await?;
            etags.push(r.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string());
        }
    }
    let (urls, etags) = (Arc::new(urls), Arc::new(etags));
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (ep, urls, etags, next) = (ep.clone(), urls.clone(), etags.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return (lat, errors);
                }
                let k = i % urls.len();
                let t = Instant::now();
                let mut req = ep.http.get(&urls[k]);
                if !etags.is_empty() {
                    req = req.header("if-none-match", &etags[k]);
                }
                match req.send().await {
                    Ok(r) if r.status() == 200 || r.status() == 304 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
        }));
    }
    collect(name, start, tasks).await
}

/// Publish `per_gun` new targets versions to each seeded repository (pre-signed before the
/// clock starts), `concurrency` repositories at a time, each repository sequentially.
pub async fn run_publishes(ep: &Endpoint, seeded: &mut [Seeded], per_gun: usize, concurrency: usize) -> anyhow::Result<Stats> {
    let mut jobs: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for s in seeded.iter_mut() {
        let files = (0..per_gun)
            .map(|k| {
                let v = s.next_version + k as i64;
                let c = format!("v{v}");
                s.repo.targets_file(v, &[("latest", c.as_bytes())])
            })
            .collect();
        s.next_version += per_gun as i64;
        jobs.push((s.repo.gun.clone(), files));
    }
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1).min(jobs.len()) {
        let (ep, jobs, next) = (ep.clone(), jobs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((gun, files)) = jobs.get(i) else { return (lat, errors) };
                for f in files {
                    let t = Instant::now();
                    match ep.post(gun, &[("targets", f)]).await {
                        Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                        Err(e) => {
                            errors += 1;
                            eprintln!("publish error: {e}");
                        }
                    }
                }
            }
        }));
    }
    collect("publish targets", start, tasks).await
}

async fn collect(name: &str, start: Instant, tasks: Vec<tokio::task::JoinHandle<(Vec<u64>, usize)>>) -> anyhow::Result<Stats> {
    let (mut micros, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        micros.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    micros.sort_unstable();
    Ok(Stats { name: name.into(), ok: micros.len(), errors, elapsed, micros })
}

/// Open-loop load: GETs over `urls` (round robin) due at `rate` per second for `duration`,
/// sent by `concurrency` connections (as wrk2 does), each timed from when it was due, so a
/// server that falls behind shows it in the latency (no coordinated omission). This gives the
/// latency at a chosen fraction of peak throughput.
pub async fn run_gets_at_rate(
    ep: &Endpoint,
    name: &str,
    urls: Vec<String>,
    rate: f64,
    duration: Duration,
    concurrency: usize,
) -> anyhow::Result<Stats> {
    let urls = Arc::new(urls);
    let total = (rate * duration.as_secs_f64()).max(1.0) as usize;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (ep, urls, next) = (ep.clone(), urls.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return (lat, errors);
                }
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                // Behind schedule: time from when the request was due (the server's backlog
                // counts). On schedule: from when the timer woke us (its ~1 ms granularity is
                // the client's, not the server's).
                let due = if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                    Instant::now()
                } else {
                    due
                };
                let ok = match ep.http.get(&urls[i % urls.len()]).send().await {
                    Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                    _ => false,
                };
                if ok {
                    lat.push(due.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
        }));
    }
    collect(name, start, tasks).await
}

/// Resident set size of a process, in MiB (Linux `/proc/<pid>/status`).
pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")?;
    Ok(kb / 1024.0)
}

/// Read every current file of every repository once (fills a server's caches).
pub async fn touch_all(ep: &Endpoint, guns: &[String], concurrency: usize) -> anyhow::Result<()> {
    let urls: Vec<String> =
        guns.iter().flat_map(|g| ["timestamp.json", "snapshot.json", "targets.json", "root.json"].map(|f| ep.tuf(g, f))).collect();
    let n = urls.len();
    let s = run_gets(ep, "touch", urls, n, concurrency, false).await?;
    if s.errors > 0 {
        bail!("{} of {n} reads failed", s.errors);
    }
    Ok(())
}
