//! The load driver: seeds repositories through the real API, then times GETs and publishes at
//! a given concurrency and reports throughput and latency percentiles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::conn::{path_of, Conn, Target};
use crate::procfs::CpuUse;
use crate::repo::{multipart, parse_key_response, RustRepo};

/// A Notary server to load: its URL and the TLS to reach it.
#[derive(Clone)]
pub struct Endpoint {
    /// The server's URL.
    pub url: String,
    /// For seeding, publishing and one-off requests.
    pub http: reqwest::Client,
    /// For the measured reads: one lean connection per load task (see `conn`).
    pub target: Target,
}

impl Endpoint {
    /// An endpoint trusting `ca_pem` (PEM) instead of the system's roots.
    pub fn new(url: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Endpoint> {
        let mut b = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(30));
        if let Some(pem) = ca_pem {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(pem)?);
        }
        Ok(Endpoint {
            url: url.trim_end_matches('/').to_string(),
            http: b.build()?,
            target: Target::new(url, ca_pem)?,
        })
    }

    /// The URL of `file` of `gun`'s TUF metadata.
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

    /// Publish `parts` (role, bytes) to `gun`; an error unless 200.
    pub async fn post(&self, gun: &str, parts: &[(&str, &[u8])]) -> anyhow::Result<()> {
        let (ct, body) = multipart(parts);
        let r = self
            .http
            .post(self.tuf(gun, ""))
            .header("content-type", ct)
            .body(body)
            .send()
            .await?;
        if r.status() != 200 {
            let st = r.status();
            bail!(
                "POST {gun}: {st} {}",
                String::from_utf8_lossy(&r.bytes().await.unwrap_or_default())
            );
        }
        Ok(())
    }
}

/// A seeded repository and what the reads need to address it.
pub struct Seeded {
    /// The repository, signed in Rust.
    pub repo: RustRepo,
    /// The next targets version to publish.
    pub next_version: i64,
    /// Its snapshot's SHA-256 (hex).
    pub snapshot_sha: String,
    /// Its targets' SHA-256 (hex).
    pub targets_sha: String,
    /// Its targets as seeded: (name, content).
    pub targets: Vec<(String, Vec<u8>)>,
}

impl Seeded {
    /// Version `v` of its targets, as a real publish makes it: the whole target list, with one
    /// target (`latest`) changed.
    pub fn next_targets_file(&self, v: i64) -> Vec<u8> {
        let c = format!("v{v}");
        let mut refs: Vec<(&str, &[u8])> = self
            .targets
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_slice()))
            .collect();
        refs.push(("latest", c.as_bytes()));
        self.repo.targets_file(v, &refs)
    }
}

/// The hex SHA-256 a timestamp or snapshot lists for `role`.
pub fn meta_sha(file: &[u8], role: &str) -> anyhow::Result<String> {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(file)?;
    let b64 = v["signed"]["meta"][role]["hashes"]["sha256"]
        .as_str()
        .context("meta sha256")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Create `guns` repositories with `targets` targets each (root + targets uploaded; the server
/// makes snapshot and timestamp).
pub async fn seed(
    ep: &Endpoint,
    prefix: &str,
    guns: usize,
    targets: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Seeded>> {
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
                let ts = parse_key_response(&ep.get_ok(&ep.tuf(&gun, "timestamp.key")).await?)
                    .context("timestamp key")?;
                let sn = parse_key_response(&ep.get_ok(&ep.tuf(&gun, "snapshot.key")).await?)
                    .context("snapshot key")?;
                let repo = RustRepo::new(&gun, sn, ts);
                let contents: Vec<(String, Vec<u8>)> = (0..targets)
                    .map(|t| (format!("tag{t}"), format!("{gun} content {t}").into_bytes()))
                    .collect();
                let refs: Vec<(&str, &[u8])> = contents
                    .iter()
                    .map(|(n, c)| (n.as_str(), c.as_slice()))
                    .collect();
                ep.post(
                    &gun,
                    &[
                        ("root", &repo.root_file(1)),
                        ("targets", &repo.targets_file(1, &refs)),
                    ],
                )
                .await?;
                let ts_file = ep.get_ok(&ep.tuf(&gun, "timestamp.json")).await?;
                let snapshot_sha = meta_sha(&ts_file, "snapshot")?;
                let snap = ep
                    .get_ok(&ep.tuf(&gun, &format!("snapshot.{snapshot_sha}.json")))
                    .await?;
                let targets_sha = meta_sha(&snap, "targets")?;
                out.push(Seeded {
                    repo,
                    next_version: 2,
                    snapshot_sha,
                    targets_sha,
                    targets: contents,
                });
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

/// One measured operation's results.
#[derive(Debug, Clone)]
pub struct Stats {
    /// The operation.
    pub name: String,
    /// Requests answered as expected.
    pub ok: usize,
    /// Requests that failed.
    pub errors: usize,
    /// How long the measurement ran.
    pub elapsed: Duration,
    /// Sorted latencies in microseconds.
    pub micros: Vec<u64>,
    /// Where the CPU went while this ran (filled in by the caller that measured it).
    pub cpu: Option<CpuUse>,
    /// The server's own view of these requests' latency, if it exports one (see
    /// [`ServerLatency`]).
    pub server_latency: Option<String>,
}

impl Stats {
    /// CPU time the server under test and the database spent per answered request, in
    /// microseconds (from `/proc`: the server's process and every `postgres` process), when the
    /// server's PID is known. What a request costs, whoever else shares the cores.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        let c = self.cpu?;
        let server = c.server?;
        let rate = self.rate();
        (rate > 0.0).then(|| (server + c.db) / rate * 1e6)
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// A row's figures: ok, req/s, p50, p99 and p999 in ms, errors.
    pub fn figures(&self) -> (usize, f64, f64, f64, f64, usize) {
        (
            self.ok,
            self.rate(),
            self.pct_ms(0.5),
            self.pct_ms(0.99),
            self.pct_ms(0.999),
            self.errors,
        )
    }
    /// A latency percentile (0–1), in milliseconds.
    pub fn pct_ms(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let i = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        self.micros[i] as f64 / 1000.0
    }
}

/// Open `n` connections for load tasks, before any clock starts.
async fn connections(ep: &Endpoint, n: usize) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        conns.push(
            ep.target
                .connect()
                .await
                .with_context(|| format!("connecting to {}", ep.url))?,
        );
    }
    Ok(conns)
}

fn paths(urls: &[String]) -> anyhow::Result<Arc<Vec<String>>> {
    Ok(Arc::new(
        urls.iter()
            .map(|u| path_of(u))
            .collect::<anyhow::Result<_>>()?,
    ))
}

/// Run `requests` GETs over `urls` (round robin) with `concurrency` workers, each on its own
/// keep-alive connection, or as many as fit in `for_at_most` when that ends first. With
/// `revalidate`, each request revalidates with `If-None-Match` and a 304 counts as success.
pub async fn run_gets(
    ep: &Endpoint,
    name: &str,
    urls: Vec<String>,
    requests: usize,
    for_at_most: Option<Duration>,
    concurrency: usize,
    revalidate: bool,
) -> anyhow::Result<Stats> {
    let paths = paths(&urls)?;
    let mut conns = connections(ep, concurrency).await?;
    let mut etags = Vec::new();
    if revalidate {
        for p in paths.iter() {
            etags.push(conns[0].get(p, None).await?.etag.unwrap_or_default());
        }
    }
    let etags = Arc::new(etags);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (paths, etags, next) = (paths.clone(), etags.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests || for_at_most.is_some_and(|d| start.elapsed() >= d) {
                    return (lat, errors);
                }
                let k = i % paths.len();
                let t = Instant::now();
                match conn.get(&paths[k], etags.get(k).map(String::as_str)).await {
                    Ok(r) if r.status == 200 || r.status == 304 => {
                        lat.push(t.elapsed().as_micros() as u64)
                    }
                    Ok(_) => errors += 1,
                    // A broken connection: count it and stop this worker (the others go on).
                    Err(_) => return (lat, errors + 1),
                }
            }
        }));
    }
    collect(name, start, tasks).await
}

/// Closed-loop GETs of `file` in repositories `{prefix}/repo{i}`, `i` drawn uniformly from
/// `0..guns` by each connection (so that, with many repositories, most reads miss any cache),
/// for `duration`. A 404 counts as an error: every repository must exist.
pub async fn run_uniform_gets(
    ep: &Endpoint,
    name: &str,
    prefix: &str,
    guns: usize,
    file: &str,
    duration: Duration,
    concurrency: usize,
) -> anyhow::Result<Stats> {
    let conns = connections(ep, concurrency).await?;
    let root = path_of(&ep.url)?;
    let head = format!("{}/v2/{prefix}/repo", root.trim_end_matches('/'));
    let tail = format!("/_trust/tuf/{file}");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (k, mut conn) in conns.into_iter().enumerate() {
        let (head, tail) = (head.clone(), tail.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            // xorshift64*, seeded per connection: uniform enough, and no lock between tasks.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ ((k as u64 + 1) << 17);
            while start.elapsed() < duration {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                let i = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as usize % guns.max(1);
                let path = format!("{head}{i}{tail}");
                let t = Instant::now();
                match conn.get(&path, None).await {
                    Ok(r) if r.status == 200 => lat.push(t.elapsed().as_micros() as u64),
                    Ok(_) => errors += 1,
                    Err(_) => return (lat, errors + 1),
                }
            }
            (lat, errors)
        }));
    }
    collect(name, start, tasks).await
}

/// Publish `count` versions of the seeded repository one after another (each the whole target
/// list with one changed, as `run_publishes` does), timing each.
pub async fn run_sequential_publishes(
    ep: &Endpoint,
    s: &mut Seeded,
    count: usize,
) -> anyhow::Result<Stats> {
    let files: Vec<Vec<u8>> = (0..count)
        .map(|k| s.next_targets_file(s.next_version + k as i64))
        .collect();
    s.next_version += count as i64;
    let start = Instant::now();
    let (mut lat, mut errors) = (Vec::new(), 0usize);
    for f in &files {
        let t = Instant::now();
        match ep.post(&s.repo.gun, &[("targets", f)]).await {
            Ok(()) => lat.push(t.elapsed().as_micros() as u64),
            Err(e) => {
                errors += 1;
                eprintln!("publish error: {e}");
            }
        }
    }
    let done = tokio::spawn(async move { (lat, errors) });
    collect("publish (one after another)", start, vec![done]).await
}

/// Publish `per_gun` new targets versions to each seeded repository (pre-signed before the
/// clock starts), `concurrency` repositories at a time, each repository sequentially.
pub async fn run_publishes(
    ep: &Endpoint,
    seeded: &mut [Seeded],
    per_gun: usize,
    concurrency: usize,
) -> anyhow::Result<Stats> {
    let mut jobs: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for s in seeded.iter_mut() {
        let files = (0..per_gun)
            .map(|k| s.next_targets_file(s.next_version + k as i64))
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
                let Some((gun, files)) = jobs.get(i) else {
                    return (lat, errors);
                };
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

async fn collect(
    name: &str,
    start: Instant,
    tasks: Vec<tokio::task::JoinHandle<(Vec<u64>, usize)>>,
) -> anyhow::Result<Stats> {
    let (mut micros, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        micros.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    micros.sort_unstable();
    Ok(Stats {
        name: name.into(),
        ok: micros.len(),
        errors,
        elapsed,
        micros,
        cpu: None,
        server_latency: None,
    })
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
    let paths = paths(&urls)?;
    let conns = connections(ep, concurrency).await?;
    let total = (rate * duration.as_secs_f64()).max(1.0) as usize;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (paths, next) = (paths.clone(), next.clone());
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
                match conn.get(&paths[i % paths.len()], None).await {
                    Ok(r) if r.status == 200 => lat.push(due.elapsed().as_micros() as u64),
                    Ok(_) => errors += 1,
                    Err(_) => return (lat, errors + 1),
                }
            }
        }));
    }
    collect(name, start, tasks).await
}

/// The latency histogram notary-rs exports (`notary_rs_http_request_duration_seconds`, by
/// operation) as read from `/metrics`: taken before and after a run, the difference is the
/// server's own timing of that run's requests, from their arrival at its router to their
/// response — without the client's and the kernel's share. Servers without it (Go) give `None`.
pub struct ServerLatency {
    /// (upper bound in seconds, cumulative count); the last bound is infinity.
    buckets: Vec<(f64, u64)>,
}

impl ServerLatency {
    /// The server's own latency of `operation`, from its metrics.
    pub async fn read(ep: &Endpoint, operation: &str) -> Option<ServerLatency> {
        let text = String::from_utf8(ep.get_ok(&format!("{}/metrics", ep.url)).await.ok()?).ok()?;
        let prefix = format!(
            "notary_rs_http_request_duration_seconds_bucket{{operation=\"{operation}\",le=\""
        );
        let buckets: Vec<(f64, u64)> = text
            .lines()
            .filter_map(|l| {
                let (le, count) = l.strip_prefix(&prefix)?.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, count.parse().ok()?))
            })
            .collect();
        (!buckets.is_empty()).then_some(ServerLatency { buckets })
    }

    /// `after − self`, summarised: the bucket bounds under which half and 99 % of the requests
    /// in between finished.
    pub fn since(&self, after: &ServerLatency, operation: &str) -> Option<String> {
        let delta: Vec<(f64, u64)> = after
            .buckets
            .iter()
            .zip(&self.buckets)
            .map(|((le, a), (_, b))| (*le, a.saturating_sub(*b)))
            .collect();
        let total = delta.last()?.1;
        if total == 0 || after.buckets.len() != self.buckets.len() {
            return None;
        }
        let bound = |q: f64| {
            let le = delta
                .iter()
                .find(|(_, c)| *c as f64 >= q * total as f64)
                .map_or(f64::INFINITY, |(le, _)| *le);
            if le.is_finite() {
                format!("≤ {:.2} ms", le * 1000.0)
            } else {
                "above every bucket".to_string()
            }
        };
        Some(format!(
            "server-side ({operation}, {total} requests): p50 {}, p99 {}",
            bound(0.5),
            bound(0.99)
        ))
    }
}

/// Read every current file of every repository once (fills a server's caches).
pub async fn touch_all(ep: &Endpoint, guns: &[String], concurrency: usize) -> anyhow::Result<()> {
    let urls: Vec<String> = guns
        .iter()
        .flat_map(|g| {
            [
                "timestamp.json",
                "snapshot.json",
                "targets.json",
                "root.json",
            ]
            .map(|f| ep.tuf(g, f))
        })
        .collect();
    let n = urls.len();
    let s = run_gets(ep, "touch", urls, n, None, concurrency, false).await?;
    if s.errors > 0 {
        bail!("{} of {n} reads failed", s.errors);
    }
    Ok(())
}
