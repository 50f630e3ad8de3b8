//! Stall mode (`--stalls SECONDS`): how much large CPU work on the server holds up small
//! requests. Small reads (`GET timestamp.json` of 20 small repositories) run open-loop at
//! `--rate` (default 1000/s) twice: once alone, once while another client publishes new
//! versions of a repository with `--targets` targets (a large upload to parse and check) and
//! reads each new `targets.json` accepting gzip (its first compression) one after another.
//! The difference in the small reads' tail is what the large work costs everyone else
//! (`notary-server`'s `offload`; docs/performance.md).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notary_bench::load::{run_gets_at_rate, seed, Endpoint, ServerLatency, Stats};

use crate::{header, row, Args};

pub(crate) async fn stalls(a: &Args, secs: f64) -> anyhow::Result<()> {
    let ca = a.ca.as_ref().map(std::fs::read).transpose()?;
    let ep = Endpoint::new(&a.url, ca.as_deref())?;
    let small = seed(&ep, "stalls.example.com/small", 20, 10, 8).await?;
    let large = seed(&ep, "stalls.example.com/large", 1, a.targets, 1)
        .await?
        .remove(0);
    let urls: Vec<String> = small
        .iter()
        .map(|s| ep.tuf(&s.repo.gun, "timestamp.json"))
        .collect();
    let rate = a.rate.unwrap_or(1000.0);
    let d = Duration::from_secs_f64(secs);
    // The server's own time too (from its arrival at the router): a request held up before it
    // is read shows in the client's figure only.
    let timed = |name: &'static str, urls: Vec<String>| {
        let ep = ep.clone();
        async move {
            let before = ServerLatency::read(&ep, "GetRole").await;
            let mut s = run_gets_at_rate(&ep, name, urls, rate, d, a.concurrency).await?;
            if let (Some(b), Some(after)) = (before, ServerLatency::read(&ep, "GetRole").await) {
                s.server_latency = b.since(&after, "GetRole");
            }
            Ok::<Stats, anyhow::Error>(s)
        }
    };
    let quiet = timed("GET timestamp.json alone", urls.clone()).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (ep, stop, cycles) = (ep.clone(), stop.clone(), cycles.clone());
        tokio::spawn(async move {
            let mut conn = ep.target.connect().await?;
            let gun = large.repo.gun.clone();
            let path = notary_bench::conn::path_of(&ep.tuf(&gun, "targets.json"))?;
            let large = Arc::new(large);
            let mut v = large.next_version;
            while !stop.load(Ordering::Relaxed) {
                // Signing a large file is this client's own CPU work: off its async workers, or
                // the small reads' requests would leave late and the delay be counted as the
                // server's.
                let file = {
                    let large = large.clone();
                    tokio::task::spawn_blocking(move || large.next_targets_file(v)).await?
                };
                ep.post(&gun, &[("targets", &file)]).await?;
                // The new file's first compression (the client accepts gzip).
                conn.get(&path, None).await?;
                v += 1;
                cycles.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    let busy = timed("GET timestamp.json + large work", urls).await?;
    stop.store(true, Ordering::Relaxed);
    worker.await??;
    header();
    row(&quiet);
    row(&busy);
    println!(
        "large work meanwhile: {} publishes of {} targets, each then read with gzip accepted ({:.1}/s)",
        cycles.load(Ordering::Relaxed),
        a.targets,
        cycles.load(Ordering::Relaxed) as f64 / secs
    );
    Ok(())
}
