//! The runs at scale: a long history (`--history`, `--history-points`), many repositories
//! (`--uniform`) and the memory they take (`--rss-guns`).

use std::time::Duration;

use notary_bench::load::{
    run_gets, run_sequential_publishes, run_uniform_gets, seed, touch_all, Endpoint,
};

use crate::{csv, header, measured, print_rss, row, server_name, server_pid, Args};

/// `--rss-guns`: memory with that many repositories cached.
pub(crate) async fn history(a: &Args, versions: i64) -> anyhow::Result<()> {
    let ca = a.ca.as_ref().map(std::fs::read).transpose()?;
    let ep = Endpoint::new(&a.url, ca.as_deref())?;
    let t = std::time::Instant::now();
    let seeded = seed(&ep, "history.example.com", 1, a.targets, 1).await?;
    let repo = &seeded[0].repo;
    let gun = "history.example.com/repo0";
    for v in 2..=versions {
        let content = format!("version {v}");
        let file = repo.targets_file(v, &[("tag0", content.as_bytes())]);
        ep.post(gun, &[("targets", &file)]).await?;
    }
    println!(
        "published {versions} versions of {gun} in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--uniform`: reads spread over many repositories, on --url and then --against.
pub(crate) async fn uniform(a: &Args, n: usize) -> anyhow::Result<()> {
    let secs = Duration::from_secs_f64(a.seconds.unwrap_or(5.0));
    let wanted = |name: &str| a.only.is_empty() || a.only.iter().any(|o| name.contains(o.as_str()));
    let mut sides = vec![(true, a.url.clone(), a.ca.clone(), a.server_pid)];
    if let Some(other) = &a.against {
        let ca = a.against_ca.clone().or(a.ca.clone());
        sides.push((false, other.clone(), ca, a.against_pid));
    }
    for (ours, url, ca, pid) in sides {
        let ca = ca.map(std::fs::read).transpose()?;
        let ep = Endpoint::new(&url, ca.as_deref())?;
        let mut rows = Vec::new();
        for file in ["timestamp.json", "targets.json"] {
            let name = format!("GET {file} (uniform)");
            if !wanted(&name) {
                continue;
            }
            // Connections and TLS sessions first, unmeasured.
            run_uniform_gets(
                &ep,
                &name,
                &a.uniform_prefix,
                n,
                file,
                Duration::from_millis(500),
                a.concurrency,
            )
            .await?;
            let s = measured(
                pid,
                run_uniform_gets(&ep, &name, &a.uniform_prefix, n, file, secs, a.concurrency),
            )
            .await?;
            rows.push(s);
        }
        println!("## {}, {n} repositories ({url})", server_name(ours));
        header();
        rows.iter().for_each(row);
        print_rss(&url, pid);
        if ours {
            if let Ok(r) = ep.http.get(format!("{url}/metrics")).send().await {
                let text = r.text().await.unwrap_or_default();
                for l in text.lines().filter(|l| l.starts_with("notary_rs_cache_")) {
                    println!("  {l}");
                }
            }
        }
        csv(a, server_name(ours), &rows)?;
    }
    Ok(())
}
pub(crate) async fn history_points(a: &Args) -> anyhow::Result<()> {
    let ca = a.ca.as_ref().map(std::fs::read).transpose()?;
    let ep = Endpoint::new(&a.url, ca.as_deref())?;
    let secs = Duration::from_secs_f64(a.seconds.unwrap_or(3.0));
    let prefix = format!(
        "history.example.com/run{}",
        chrono::Utc::now().timestamp_millis()
    );
    let mut seeded = seed(&ep, &prefix, 1, a.targets, 1).await?;
    let s = &mut seeded[0];
    let gun = s.repo.gun.clone();
    for &point in &a.history_points {
        let t = std::time::Instant::now();
        let missing = (point - s.next_version + 1).max(0) as usize;
        run_sequential_publishes(&ep, s, missing).await?;
        println!(
            "{gun}: {} versions ({missing} published in {:.1}s)",
            s.next_version - 1,
            t.elapsed().as_secs_f64()
        );
        if let Some(cmd) = &a.at_each_point {
            let st = std::process::Command::new("bash")
                .args(["-c", cmd])
                .env("VERSIONS", point.to_string())
                .status()?;
            anyhow::ensure!(st.success(), "--at-each-point failed at {point}: {st}");
        }
        let mut rows =
            vec![measured(server_pid(a), run_sequential_publishes(&ep, s, a.publishes)).await?];
        let newest = s.next_version - 1;
        // The changefeed's last page: newest first (`change_id=-1`), then forward from 100
        // before the end, as a consumer keeping up reads it.
        let latest = ep
            .http
            .get(format!(
                "{}/v2/_trust/changefeed?change_id=-1&records=100",
                a.url
            ))
            .send()
            .await?
            .bytes()
            .await?;
        let latest: serde_json::Value = serde_json::from_slice(&latest)?;
        let near_end: i64 = latest["records"][0]["ID"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or(0);
        let reads = [
            ("GET targets.json (current)", ep.tuf(&gun, "targets.json")),
            (
                "GET 1.targets.json (oldest)",
                ep.tuf(&gun, "1.targets.json"),
            ),
            (
                "GET <newest>.targets.json",
                ep.tuf(&gun, &format!("{newest}.targets.json")),
            ),
            (
                "GET changefeed (newest 100)",
                format!("{}/v2/_trust/changefeed?change_id=-1&records=100", a.url),
            ),
            (
                "GET changefeed (last 100, forward)",
                format!(
                    "{}/v2/_trust/changefeed?change_id={}&records=100",
                    a.url,
                    near_end - 1
                ),
            ),
            (
                "GET <gun> changefeed (newest 100)",
                format!(
                    "{}/v2/{gun}/_trust/changefeed?change_id=-1&records=100",
                    a.url
                ),
            ),
        ];
        for (name, url) in reads {
            run_gets(
                &ep,
                name,
                vec![url.clone()],
                usize::MAX,
                Some(Duration::from_millis(300)),
                a.concurrency,
                false,
            )
            .await?;
            rows.push(
                measured(
                    server_pid(a),
                    run_gets(
                        &ep,
                        name,
                        vec![url],
                        usize::MAX,
                        Some(secs),
                        a.concurrency,
                        false,
                    ),
                )
                .await?,
            );
        }
        println!("## {point} versions");
        header();
        rows.iter().for_each(row);
        let label = format!("versions={point}");
        csv(&Args { label, ..a.clone() }, "notary-rs", &rows)?;
    }
    Ok(())
}

pub(crate) async fn memory(a: &Args, n: usize) -> anyhow::Result<()> {
    let ca = a.ca.as_ref().map(std::fs::read).transpose()?;
    let ep = Endpoint::new(&a.url, ca.as_deref())?;
    let prefix = format!(
        "rss.example.com/run{}",
        chrono::Utc::now().timestamp_millis()
    );
    print_rss("before seeding", a.server_pid);
    let t = std::time::Instant::now();
    let seeded = seed(&ep, &prefix, n, a.targets, a.concurrency).await?;
    println!(
        "seeded {n} repositories ({} targets each) in {:.1}s",
        a.targets,
        t.elapsed().as_secs_f64()
    );
    let guns: Vec<String> = seeded.iter().map(|s| s.repo.gun.clone()).collect();
    drop(seeded);
    touch_all(&ep, &guns, a.concurrency).await?;
    touch_all(&ep, &guns, a.concurrency).await?;
    print_rss(
        &format!("{n} repositories seeded, every current file read twice"),
        a.server_pid,
    );
    // What the server says its cache holds (notary-rs reports it in /metrics).
    if let Ok(r) = ep.http.get(format!("{}/metrics", a.url)).send().await {
        let text = r.text().await.unwrap_or_default();
        for l in text.lines().filter(|l| l.starts_with("notary_rs_cache_")) {
            println!("  {l}");
        }
    }
    Ok(())
}
