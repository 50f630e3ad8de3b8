//! Every metric of `/metrics`, rendered here in the Prometheus text exposition format (the
//! other modules only count): the Go server's `notary_server_http_requests_total` (by code,
//! method and operation) and its request duration and request/response size summaries
//! (under Go's names, `_sum` and `_count` only: Go's sliding-window quantiles cannot be
//! aggregated), our request latency histogram
//! (`notary_rs_http_request_duration_seconds` by operation: Go exports sliding-window summaries
//! instead, which cannot be aggregated across instances), the read cache, how current reads
//! were made fresh (`coherence`), and the imported repositories awaiting a key rotation.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (fine around the 1–2 ms a cached read takes
/// under load, coarse beyond).
pub(crate) const LATENCY_BUCKETS: [f64; 19] = [
    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

use crate::coherence::CoherenceCounts;
use notary_common::sync::lock;

/// The Prometheus text format, one metric family at a time.
#[derive(Default)]
pub(crate) struct Exposition(String);

impl Exposition {
    /// A family: its `# HELP` and `# TYPE` lines, then each (labels, value) sample; labels are
    /// written as given (`code="200",method="get"`), empty for none.
    pub(crate) fn family(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (String, String)>,
    ) -> &mut Self {
        use std::fmt::Write;
        let o = &mut self.0;
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(o, "{name} {value}");
            } else {
                let _ = writeln!(o, "{name}{{{labels}}} {value}");
            }
        }
        self
    }

    /// A histogram family: per label set, cumulative `_bucket`s, `_sum` and `_count`.
    fn histograms<'h>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (String, &'h Histogram)>,
    ) {
        use std::fmt::Write;
        self.family(name, "histogram", help, []);
        let o = &mut self.0;
        for (labels, h) in series {
            let mut cumulative = 0;
            let bounds = LATENCY_BUCKETS.iter().map(|le| le.to_string());
            for (i, le) in bounds.chain(["+Inf".to_string()]).enumerate() {
                cumulative += h.counts[i];
                let _ = writeln!(o, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(o, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(o, "{name}_count{{{labels}}} {cumulative}");
        }
    }

    /// A summary family without quantiles: per label set, `_sum` and `_count`.
    fn summaries(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (String, f64, u64)>,
    ) {
        use std::fmt::Write;
        self.family(name, "summary", help, []);
        let o = &mut self.0;
        for (labels, sum, count) in series {
            let _ = writeln!(o, "{name}_sum{{{labels}}} {sum}");
            let _ = writeln!(o, "{name}_count{{{labels}}} {count}");
        }
    }

    /// A family with one unlabelled sample.
    pub(crate) fn single(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        value: impl ToString,
    ) -> &mut Self {
        self.family(name, kind, help, [(String::new(), value.to_string())])
    }

    /// The exposition text.
    pub(crate) fn finish(self) -> String {
        self.0
    }
}

/// The read cache's size: (files, repositories, bytes).
pub(crate) type CacheSize = (usize, usize, usize);

/// Imported repositories, those awaiting a key rotation, and the earliest timestamp expiry
/// among those (`notary-server imported`).
pub(crate) type RotationCounts = (usize, usize, Option<chrono::DateTime<chrono::Utc>>);

/// What the health check found at scrape time: (database answers, a signer answers).
pub(crate) type Up = (bool, bool);

/// The whole `/metrics` page.
pub(crate) fn render(
    http: &Metrics,
    cache: CacheSize,
    coherence: CoherenceCounts,
    rotation: Option<RotationCounts>,
    publication: Option<crate::publication::RoundCounts>,
    up: Up,
) -> String {
    let mut e = Exposition::default();
    http.write(&mut e);
    e.single(
        "notary_rs_database_up",
        "gauge",
        "1 if the metadata database answered the health check made at this scrape.",
        u8::from(up.0),
    )
    .single(
        "notary_rs_signer_up",
        "gauge",
        "1 if the signing service (a signer, or the local key store) answered the health check made at this scrape.",
        u8::from(up.1),
    );
    let (files, chains, bytes) = cache;
    e.single(
        "notary_rs_cache_files",
        "gauge",
        "Metadata files held by the read cache.",
        files,
    )
    .single(
        "notary_rs_cache_repositories",
        "gauge",
        "Repositories whose current chain is cached.",
        chains,
    )
    .single(
        "notary_rs_cache_bytes",
        "gauge",
        "Approximate bytes held by the read cache.",
        bytes,
    );
    e.family(
        "notary_rs_fresh_reads_total",
        "counter",
        "Current reads (metadata files and changefeed pages), by how they were made fresh: under this instance's read lease (no database round trip) or by waiting for a changefeed check.",
        [
            ("by=\"lease\"".to_string(), coherence.leased_reads.to_string()),
            ("by=\"changefeed_check\"".to_string(), coherence.barrier_reads.to_string()),
        ],
    )
    .single("notary_rs_changefeed_checks_total", "counter", "Changefeed checks run.", coherence.checks)
    .single(
        "notary_rs_read_lease",
        "gauge",
        "1 while this instance serves current reads under its read lease.",
        u8::from(coherence.lease_held),
    );
    if let Some((imported, awaiting, earliest)) = rotation {
        e.single(
            "notary_rs_imported_repositories",
            "gauge",
            "Repositories brought here by `notary-server import`.",
            imported,
        )
        .single(
            "notary_rs_imported_awaiting_rotation",
            "gauge",
            "Imported repositories whose timestamp key this server does not hold: their owners must rotate it before publishing.",
            awaiting,
        );
        // +Inf when none awaits: the expression of an alert on it always has a series.
        e.single(
            "notary_rs_imported_awaiting_rotation_earliest_expiry_seconds",
            "gauge",
            "Unix time at which the first timestamp of a repository awaiting rotation expires (+Inf if none awaits).",
            earliest.map_or("+Inf".to_string(), |t| t.timestamp().to_string()),
        );
    }
    if let Some(p) = publication {
        e.family(
            "notary_rs_publication_rounds_total",
            "counter",
            "Static publication rounds of this instance: synced (completed here), elsewhere (another instance held the tree), failed (retried; the cause is in the log).",
            [
                ("result=\"synced\"".to_string(), p.synced.to_string()),
                ("result=\"elsewhere\"".to_string(), p.elsewhere.to_string()),
                ("result=\"failed\"".to_string(), p.failed.to_string()),
            ],
        )
        .single(
            "notary_rs_publication_last_synced_seconds",
            "gauge",
            "Unix time of the last publication round this instance completed (0: none yet).",
            p.last_synced,
        );
    }
    e.finish()
}

#[derive(Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last one counts what is above every bound.
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
}

/// Per operation: requests, and the sums of their durations (µs) and sizes (bytes).
#[derive(Default)]
struct Sums {
    count: u64,
    micros: f64,
    request_bytes: f64,
    response_bytes: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, String, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    sums: BTreeMap<&'static str, Sums>,
}

/// The request metrics (Go's names, and a latency histogram by operation).
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// One request of `operation`, answered with `code` after `took` (from its arrival at the
    /// router to its response, the body not yet sent); `sizes`: its body (`Content-Length`)
    /// and the response body, in bytes.
    pub(crate) fn observe(
        &self,
        operation: &'static str,
        method: &str,
        code: u16,
        took: Duration,
        sizes: (u64, u64),
    ) {
        let mut m = lock(&self.inner);
        let s = m.sums.entry(operation).or_default();
        s.count += 1;
        s.micros += took.as_secs_f64() * 1e6;
        s.request_bytes += sizes.0 as f64;
        s.response_bytes += sizes.1 as f64;
        *m.requests
            .entry((operation, method.to_lowercase(), code))
            .or_default() += 1;
        let h = m.latency.entry(operation).or_default();
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        h.counts[bucket] += 1;
        h.sum += secs;
    }

    /// The request counters and latency histograms.
    fn write(&self, e: &mut Exposition) {
        let m = lock(&self.inner);
        e.family(
            "notary_server_http_requests_total",
            "counter",
            "Total number of HTTP requests made.",
            m.requests.iter().map(|((op, method, code), n)| {
                (
                    format!("code=\"{code}\",method=\"{method}\",operation=\"{op}\""),
                    n.to_string(),
                )
            }),
        );
        let go_summary = |e: &mut Exposition, name: &str, help: &str, f: fn(&Sums) -> f64| {
            e.summaries(
                name,
                help,
                m.sums
                    .iter()
                    .map(|(op, s)| (format!("operation=\"{op}\""), f(s), s.count)),
            )
        };
        go_summary(
            e,
            "notary_server_http_request_duration_microseconds",
            "The HTTP request latencies in microseconds.",
            |s| s.micros,
        );
        go_summary(
            e,
            "notary_server_http_request_size_bytes",
            "The HTTP request sizes in bytes (the body's Content-Length).",
            |s| s.request_bytes,
        );
        go_summary(
            e,
            "notary_server_http_response_size_bytes",
            "The HTTP response sizes in bytes.",
            |s| s.response_bytes,
        );
        e.histograms(
            "notary_rs_http_request_duration_seconds",
            "Time from a request's arrival at the router to its response, by operation.",
            m.latency
                .iter()
                .map(|(op, h)| (format!("operation=\"{op}\""), h)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative_and_count_every_request() {
        let m = Metrics::default();
        for micros in [100, 900, 1_200, 1_900, 40_000, 20_000_000] {
            m.observe(
                "GetRole",
                "GET",
                200,
                Duration::from_micros(micros),
                (0, 10),
            );
        }
        let mut e = Exposition::default();
        m.write(&mut e);
        let out = e.finish();
        let value = |le: &str| -> u64 {
            let prefix = format!("notary_rs_http_request_duration_seconds_bucket{{operation=\"GetRole\",le=\"{le}\"}} ");
            out.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("{le} missing:\n{out}"))
                .parse()
                .unwrap()
        };
        assert_eq!(value("0.00025"), 1);
        assert_eq!(value("0.001"), 2);
        assert_eq!(value("0.002"), 4);
        assert_eq!(value("0.05"), 5);
        assert_eq!(value("10"), 5);
        assert_eq!(value("+Inf"), 6);
        assert!(out
            .contains("notary_rs_http_request_duration_seconds_count{operation=\"GetRole\"} 6\n"));
        assert!(out.contains("notary_server_http_requests_total{code=\"200\",method=\"get\",operation=\"GetRole\"} 6\n"));
    }
}
