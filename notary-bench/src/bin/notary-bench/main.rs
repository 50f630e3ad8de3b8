//! notary-bench: seed a Notary server through its API, then measure reads and publishes.
//!
//!     notary-bench --url https://127.0.0.1:4443 --ca notary-data/tls/ca.crt
//!
//! Prints, per operation: requests, req/s, p50/p99/p999 latency and errors.

mod scale;
mod stalls;

use std::time::Duration;

use clap::Parser;
use notary_bench::load::{
    run_gets, run_gets_at_rate, run_publishes, seed, Endpoint, ServerLatency, Stats,
};
use notary_bench::procfs::{rss_mib, CpuProbe};

#[derive(Parser, Debug, Clone)]
#[command(name = "notary-bench", version)]
struct Args {
    /// Base URL of the server under test.
    #[arg(long)]
    url: String,
    /// PEM CA bundle to trust for --url.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Repositories to seed.
    #[arg(long, default_value_t = 20)]
    guns: usize,
    /// Targets per repository.
    #[arg(long, default_value_t = 10)]
    targets: usize,
    /// GET requests per read operation (see --seconds).
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    /// Instead of --requests: run each read for this many seconds (after half a second of
    /// unmeasured warm-up). Long runs average out a shared machine's hiccups; a count of
    /// requests would take minutes on a slow server.
    #[arg(long)]
    seconds: Option<f64>,
    /// Publishes per repository.
    #[arg(long, default_value_t = 5)]
    publishes: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Run the same load against this server too (e.g. the Go notary-server) and print ratios.
    #[arg(long)]
    against: Option<String>,
    /// PEM CA bundle to trust for --against (default: --ca).
    #[arg(long)]
    against_ca: Option<std::path::PathBuf>,
    /// Seconds of open-loop load at half the measured peak of `GET timestamp.json` (0: skip).
    #[arg(long, default_value_t = 3.0)]
    half_peak_secs: f64,
    /// Run the open-loop measurements at this many requests per second instead of half of the
    /// measured peak (to compare settings at one load).
    #[arg(long)]
    rate: Option<f64>,
    /// PID of the server under --url: its resident memory is printed after the run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A file holding the PID of the server under --url, read again before each measurement
    /// (the server may be restarted meanwhile, e.g. by --at-each-point).
    #[arg(long)]
    server_pid_file: Option<std::path::PathBuf>,
    /// PID of the server under --against.
    #[arg(long)]
    against_pid: Option<u32>,
    /// Memory mode: seed this many repositories on --url, read each one's current files once
    /// (so all are cached), print the resident memory of --server-pid, and stop.
    #[arg(long)]
    rss_guns: Option<usize>,
    /// History mode: make one repository (GUN `history.example.com/repo0`) with this many
    /// published versions on --url, one publish after another, and stop (scripts/bench.sh
    /// --history measures `notary-server prune` on it).
    #[arg(long)]
    history: Option<i64>,
    /// Stall mode: small reads' latency alone and while large publishes and first
    /// compressions run, this many seconds each (`stalls`).
    #[arg(long)]
    stalls: Option<f64>,
    /// Many-repositories mode: repositories `{--uniform-prefix}/repo0` … `repo{N-1}` already
    /// exist on --url (and --against), seeded directly in the database by `scripts/bench.sh
    /// --curves`; read `timestamp.json` and `targets.json` of repositories drawn uniformly at
    /// random for --seconds each, then print resident memory and the cache's own figures.
    #[arg(long)]
    uniform: Option<usize>,
    /// The GUN prefix of --uniform's repositories.
    #[arg(long, default_value = "scale.example.com")]
    uniform_prefix: String,
    /// Long-history mode: make one repository on --url and, at each of these version counts
    /// (comma-separated, increasing), run --at-each-point and then measure publishes, current
    /// and by-version reads and changefeed pages there.
    #[arg(long, value_delimiter = ',')]
    history_points: Vec<i64>,
    /// Shell command run at each --history-points point before it is measured, with VERSIONS
    /// set to the point (scripts/bench.sh grows the changefeed with it).
    #[arg(long)]
    at_each_point: Option<String>,
    /// Append every measured row to this CSV file (label,server,operation,ok,req_s,p50_ms,
    /// p99_ms,p999_ms,errors) for `notary-plot`.
    #[arg(long)]
    csv: Option<std::path::PathBuf>,
    /// The first column of --csv's rows (e.g. `targets=20000`).
    #[arg(long, default_value = "")]
    label: String,
    /// Run only the operations whose names contain one of these (comma-separated), e.g.
    /// `--only timestamp` for the current-timestamp reads and the open-loop run after them.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// Append `rows` measured on `server` to --csv, if given.
fn csv(a: &Args, server: &str, rows: &[Stats]) -> anyhow::Result<()> {
    use std::io::Write;
    let Some(path) = &a.csv else {
        return Ok(());
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for s in rows {
        let (ok, rate, p50, p99, p999, errors) = s.figures();
        let name = s.name.replace(',', ";");
        writeln!(
            f,
            "{},{server},{name},{ok},{rate:.1},{p50:.3},{p99:.3},{p999:.3},{errors}",
            a.label
        )?;
    }
    Ok(())
}

/// The name a server goes by in --csv: ours, or the one --against names.
fn server_name(ours: bool) -> &'static str {
    if ours {
        "notary-rs"
    } else {
        "go"
    }
}

fn row(s: &Stats) {
    let cpu = match s.cpu {
        Some(c) => format!(
            "{:>7.0}% {:>7} {:>6.0}% {:>7.0}%",
            c.client * 100.0,
            c.server
                .map(|v| format!("{:.0}%", v * 100.0))
                .unwrap_or_else(|| "-".into()),
            c.db * 100.0,
            c.machine * 100.0
        ),
        None => String::new(),
    };
    let cost = s
        .cpu_us_per_request()
        .map_or_else(|| "-".to_string(), |us| format!("{us:.0}"));
    let (ok, rate, p50, p99, p999, errors) = s.figures();
    println!(
        "{:<32} {ok:>8} {rate:>10.0} {p50:>9.2} {p99:>9.2} {p999:>9.2} {errors:>7} {cpu} {cost:>8}",
        s.name
    );
    if let Some(l) = &s.server_latency {
        println!("{:<32} {l}", "");
    }
}

/// Run one measurement and note where the CPU went meanwhile.
async fn measured(
    server_pid: Option<u32>,
    run: impl std::future::Future<Output = anyhow::Result<Stats>>,
) -> anyhow::Result<Stats> {
    let probe = CpuProbe::start(server_pid);
    let mut s = run.await?;
    s.cpu = Some(probe.finish());
    Ok(s)
}

/// Seed `url`, then run every read and the publishes; returns one row per operation.
async fn suite(
    a: &Args,
    url: &str,
    ca: Option<&std::path::PathBuf>,
    pid: Option<u32>,
) -> anyhow::Result<Vec<Stats>> {
    let wanted = |name: &str| a.only.is_empty() || a.only.iter().any(|o| name.contains(o.as_str()));
    let ca = ca.map(std::fs::read).transpose()?;
    let ep = Endpoint::new(url, ca.as_deref())?;
    let prefix = format!(
        "bench.example.com/run{}",
        chrono::Utc::now().timestamp_millis()
    );
    let t = std::time::Instant::now();
    let mut seeded = seed(&ep, &prefix, a.guns, a.targets, a.concurrency.min(8)).await?;
    println!(
        "seeded {} repositories ({} targets each) on {url} in {:.1}s; concurrency {}",
        seeded.len(),
        a.targets,
        t.elapsed().as_secs_f64(),
        a.concurrency
    );
    let urls = |f: &dyn Fn(&notary_bench::load::Seeded) -> String| {
        seeded.iter().map(f).collect::<Vec<_>>()
    };
    let reads: Vec<(&str, Vec<String>, bool)> = vec![
        (
            "GET timestamp.json",
            urls(&|s| ep.tuf(&s.repo.gun, "timestamp.json")),
            false,
        ),
        (
            "GET snapshot.json",
            urls(&|s| ep.tuf(&s.repo.gun, "snapshot.json")),
            false,
        ),
        (
            "GET root.json",
            urls(&|s| ep.tuf(&s.repo.gun, "root.json")),
            false,
        ),
        (
            "GET targets.json",
            urls(&|s| ep.tuf(&s.repo.gun, "targets.json")),
            false,
        ),
        (
            "GET snapshot.<sha256>.json",
            urls(&|s| ep.tuf(&s.repo.gun, &format!("snapshot.{}.json", s.snapshot_sha))),
            false,
        ),
        (
            "GET targets.<sha256>.json",
            urls(&|s| ep.tuf(&s.repo.gun, &format!("targets.{}.json", s.targets_sha))),
            false,
        ),
        (
            "GET 1.root.json",
            urls(&|s| ep.tuf(&s.repo.gun, "1.root.json")),
            false,
        ),
        (
            "GET timestamp.json (304)",
            urls(&|s| ep.tuf(&s.repo.gun, "timestamp.json")),
            true,
        ),
    ];
    let timestamps = reads[0].1.clone();
    let by_hash = reads[4].1.clone();
    let mut out = Vec::new();
    let mut peaks = std::collections::HashMap::new();
    for (name, u, reval) in reads {
        if !wanted(name) {
            continue;
        }
        // Warm up (connections, TLS sessions, the server's pools and caches) unmeasured.
        let (warm_up, runs) = match a.seconds {
            Some(s) => (
                (usize::MAX, Some(Duration::from_millis(500))),
                (usize::MAX, Some(Duration::from_secs_f64(s))),
            ),
            None => (
                ((a.requests / 10).clamp(a.concurrency, 3000), None),
                (a.requests, None),
            ),
        };
        run_gets(
            &ep,
            name,
            u.clone(),
            warm_up.0,
            warm_up.1,
            a.concurrency,
            reval,
        )
        .await?;
        let s = measured(
            pid,
            run_gets(&ep, name, u, runs.0, runs.1, a.concurrency, reval),
        )
        .await?;
        peaks.insert(name, s.rate());
        out.push(s);
    }
    if a.half_peak_secs > 0.0 {
        let d = Duration::from_secs_f64(a.half_peak_secs);
        // Current timestamps, then a read that needs no freshness check (content-addressed):
        // the floor this machine and client set, to compare with.
        for (peak_of, name, u) in [
            (
                "GET timestamp.json",
                "GET timestamp.json @50% peak",
                timestamps,
            ),
            (
                "GET snapshot.<sha256>.json",
                "GET snapshot.<sha256> @50% peak",
                by_hash,
            ),
        ] {
            if let Some(peak) = peaks.get(peak_of) {
                let (name, rate) = match a.rate {
                    Some(r) => (
                        format!(
                            "{} @{r:.0}/s",
                            &name[..name.find(" @").unwrap_or(name.len())]
                        ),
                        r,
                    ),
                    None => (name.to_string(), peak / 2.0),
                };
                let operation = if peak_of.contains("sha256") {
                    "GetRoleByHash"
                } else {
                    "GetRole"
                };
                let before = ServerLatency::read(&ep, operation).await;
                let mut s =
                    measured(pid, run_gets_at_rate(&ep, &name, u, rate, d, a.concurrency)).await?;
                if let (Some(before), Some(after)) =
                    (before, ServerLatency::read(&ep, operation).await)
                {
                    s.server_latency = before.since(&after, operation);
                }
                out.push(s);
            }
        }
    }
    if wanted("publish targets") {
        out.push(
            measured(
                pid,
                run_publishes(&ep, &mut seeded, a.publishes, a.concurrency),
            )
            .await?,
        );
    }
    Ok(out)
}

fn header() {
    println!(
        "{:<32} {:>8} {:>10} {:>9} {:>9} {:>9} {:>7} {:>8} {:>7} {:>7} {:>8} {:>8}",
        "operation",
        "ok",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "errors",
        "cpu:bench",
        "server",
        "db",
        "machine",
        "µs/req"
    );
}

fn print_rss(label: &str, pid: Option<u32>) {
    if let Some(pid) = pid {
        match rss_mib(pid) {
            Ok(m) => println!("{label}: resident memory {m:.1} MiB (pid {pid})"),
            Err(e) => println!("{label}: resident memory unknown: {e:#}"),
        }
    }
}

/// `--history-points`: one repository growing to each point, measured there.
/// --server-pid-file's PID, else --server-pid.
fn server_pid(a: &Args) -> Option<u32> {
    a.server_pid_file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok())
        .or(a.server_pid)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut a = Args::parse();
    a.server_pid = server_pid(&a);
    if let Some(n) = a.rss_guns {
        return scale::memory(&a, n).await;
    }
    if let Some(n) = a.history {
        return scale::history(&a, n).await;
    }
    if let Some(n) = a.uniform {
        return scale::uniform(&a, n).await;
    }
    if let Some(secs) = a.stalls {
        return stalls::stalls(&a, secs).await;
    }
    if !a.history_points.is_empty() {
        return scale::history_points(&a).await;
    }
    let ours = suite(&a, &a.url, a.ca.as_ref(), a.server_pid).await?;
    header();
    ours.iter().for_each(row);
    print_rss(&a.url, a.server_pid);
    csv(&a, server_name(true), &ours)?;
    if let Some(other) = &a.against {
        println!();
        let theirs = suite(
            &a,
            other,
            a.against_ca.as_ref().or(a.ca.as_ref()),
            a.against_pid,
        )
        .await?;
        header();
        theirs.iter().for_each(row);
        print_rss(other, a.against_pid);
        csv(&a, server_name(false), &theirs)?;
        println!();
        // The cost columns: CPU µs of server + Postgres per request (see Stats::cpu_us_per_request).
        println!(
            "{:<32} {:>12} {:>12} {:>9} {:>12} {:>12} {:>10} {:>10} {:>9}",
            "operation",
            "req/s",
            "vs req/s",
            "ratio",
            "p99 ms",
            "vs p99 ms",
            "µs/req",
            "vs µs/req",
            "cost"
        );
        for (x, y) in ours.iter().zip(&theirs) {
            let (cx, cy) = (x.cpu_us_per_request(), y.cpu_us_per_request());
            let us = |c: Option<f64>| c.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
            let cost = match (cx, cy) {
                (Some(a), Some(b)) if a > 0.0 => format!("{:.1}x", b / a),
                _ => "-".to_string(),
            };
            println!(
                "{:<32} {:>12.0} {:>12.0} {:>8.1}x {:>12.2} {:>12.2} {:>10} {:>10} {:>9}",
                x.name,
                x.rate(),
                y.rate(),
                x.rate() / y.rate().max(1e-9),
                x.pct_ms(0.99),
                y.pct_ms(0.99),
                us(cx),
                us(cy),
                cost
            );
        }
    }
    Ok(())
}
