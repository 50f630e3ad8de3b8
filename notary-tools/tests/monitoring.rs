//! The monitoring in `deploy/monitoring/` against the real thing: Debian's Prometheus scraping a
//! running server (HTTPS, its CA) with our alert rules loaded. `promtool check rules` passes;
//! every dashboard expression returns data; every alert expression is valid and every metric it
//! names has series; with the signer stopped, the signer-down alert fires (its `for:` shortened
//! to 0s in the copy Prometheus loads — the only change).
#![cfg(feature = "system-tests")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::*;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/monitoring")
        .join(file)
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `expr:` of every alert rule (one line each).
fn alert_exprs() -> Vec<String> {
    std::fs::read_to_string(deploy("alerts.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_string())
        .collect()
}

/// Every query of every dashboard panel.
fn dashboard_exprs() -> Vec<String> {
    let d: serde_json::Value =
        serde_json::from_slice(&std::fs::read(deploy("grafana-dashboard.json")).unwrap()).unwrap();
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

/// The metric names an expression reads (ours and Prometheus' `up`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names: Vec<String> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("notary_") || *w == "up")
        .map(String::from)
        .collect();
    names.dedup();
    names
}

async fn query(http: &reqwest::Client, base: &str, q: &str) -> serde_json::Value {
    let r: serde_json::Value = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"]["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_evaluates_the_dashboards_and_alerts() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: Prometheus is not installed (Debian package prometheus; `bash scripts/test.sh` installs it)");
        return;
    }
    let check = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(deploy("alerts.yml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("tls")).unwrap();
    let mut signer = SignerProc::start(false, None, &tls).await;
    let s = Server::start_with_tls(
        &create_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service()}),
        Some(&tls),
    )
    .await;

    // Prometheus: our rules (alerts fire at once), scraping the server every second.
    let rules = std::fs::read_to_string(deploy("alerts.yml"))
        .unwrap()
        .lines()
        .map(|l| match l.trim().strip_prefix("for:") {
            Some(_) => format!("{}for: 0s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(tmp.path().join("alerts.yml"), rules).unwrap();
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\n\
             scrape_configs:\n  - job_name: notary-server\n    scheme: https\n    tls_config:\n      ca_file: {}\n    \
             static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            tls.ca.display(),
            s.port
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(tmp.path().join("prometheus.log")).unwrap();
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                tmp.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let prom_log =
        || std::fs::read_to_string(tmp.path().join("prometheus.log")).unwrap_or_default();

    // Traffic: a repository, publishes, reads.
    let gun = "example.com/monitored/repo";
    let repo = init_repo(&s, gun).await;
    for v in 2..=4 {
        let (st, _) = s
            .post_parts(gun, &[("targets", &repo.targets_file(v, &[("t", b"t")]))])
            .await;
        assert_eq!(st, 200);
        for f in [
            "timestamp.json",
            "targets.json",
            &format!("{v}.targets.json"),
        ] {
            assert_eq!(s.get(&s.tuf(gun, f)).await.0, 200);
        }
    }
    // Scraped a few times, healthy.
    eventually(
        Duration::from_secs(60),
        Duration::from_millis(500),
        async || {
            let r = query(&http, &base, "count_over_time(notary_rs_signer_up[1m])").await;
            let scrapes = r[0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            if scrapes >= 5.0 {
                Ok(())
            } else {
                Err(format!("scraped {scrapes} times: {}", prom_log()))
            }
        },
    )
    .await;
    let up = query(&http, &base, "notary_rs_signer_up").await;
    assert_eq!(up[0]["value"][1], "1", "{up}");

    // The signer stops: publishes and new keys answer 503, and the alert fires.
    signer.stop();
    let (st, _) = s
        .post_parts(gun, &[("targets", &repo.targets_file(5, &[("t", b"t")]))])
        .await;
    assert_eq!(st, 503);
    assert_eq!(
        s.get(&s.tuf("example.com/monitored/new", "timestamp.key"))
            .await
            .0,
        503
    );
    eventually(
        Duration::from_secs(60),
        Duration::from_millis(500),
        async || {
            let alerts: serde_json::Value = http
                .get(format!("{base}/api/v1/alerts"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let firing = alerts["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| {
                    a["labels"]["alertname"] == "NotarySignerUnavailable" && a["state"] == "firing"
                });
            if firing {
                Ok(())
            } else {
                Err(format!(
                    "the signer-down alert has not fired: {alerts}\n{}",
                    prom_log()
                ))
            }
        },
    )
    .await;
    // Scraped again after the 503s.
    tokio::time::sleep(Duration::from_secs(3)).await;

    for expr in dashboard_exprs() {
        let r = query(&http, &base, &expr).await;
        assert!(
            !r.as_array().unwrap().is_empty(),
            "dashboard query returned no data: {expr}"
        );
    }
    for expr in alert_exprs() {
        query(&http, &base, &expr).await; // valid
        for name in metric_names(&expr) {
            let r = query(&http, &base, &name).await;
            assert!(
                !r.as_array().unwrap().is_empty(),
                "alert `{expr}` reads {name}, which has no series"
            );
        }
    }
    // Go's summaries are there under Go's names.
    for name in [
        "notary_server_http_request_duration_microseconds_count",
        "notary_server_http_request_size_bytes_sum",
        "notary_server_http_response_size_bytes_sum",
    ] {
        assert!(!query(&http, &base, name)
            .await
            .as_array()
            .unwrap()
            .is_empty());
    }
}
