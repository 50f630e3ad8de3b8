//! Prometheus metrics with the Go server's names (`notary_server_http_requests_total` by
//! code, method and operation), rendered in the text exposition format, and our own request
//! latency histogram (`notary_rs_http_request_duration_seconds` by operation: Go exports
//! sliding-window summaries instead, which cannot be aggregated across instances).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (fine around the 1–2 ms a cached read takes
/// under load, coarse beyond).
pub const LATENCY_BUCKETS: [f64; 19] = [
    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last one counts what is above every bound.
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, String, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// One request of `operation`, answered with `code` after `took` (from its arrival at the
    /// router to its response, the body not yet sent).
    pub fn observe(&self, operation: &'static str, method: &str, code: u16, took: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
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

    pub fn render(&self) -> String {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from("# HELP notary_server_http_requests_total Total number of HTTP requests made.\n# TYPE notary_server_http_requests_total counter\n");
        for ((op, method, code), n) in m.requests.iter() {
            out.push_str(&format!("notary_server_http_requests_total{{code=\"{code}\",method=\"{method}\",operation=\"{op}\"}} {n}\n"));
        }
        out.push_str(
            "# HELP notary_rs_http_request_duration_seconds Time from a request's arrival at the router to its response, by operation.\n\
             # TYPE notary_rs_http_request_duration_seconds histogram\n",
        );
        for (op, h) in m.latency.iter() {
            let mut cumulative = 0;
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                out.push_str(&format!("notary_rs_http_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{le}\"}} {cumulative}\n"));
            }
            cumulative += h.counts[LATENCY_BUCKETS.len()];
            out.push_str(&format!("notary_rs_http_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {cumulative}\n"));
            out.push_str(&format!(
                "notary_rs_http_request_duration_seconds_sum{{operation=\"{op}\"}} {}\n",
                h.sum
            ));
            out.push_str(&format!("notary_rs_http_request_duration_seconds_count{{operation=\"{op}\"}} {cumulative}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative_and_count_every_request() {
        let m = Metrics::default();
        for micros in [100, 900, 1_200, 1_900, 40_000, 20_000_000] {
            m.observe("GetRole", "GET", 200, Duration::from_micros(micros));
        }
        let out = m.render();
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
