//! Prometheus metrics with the Go server's names (`notary_server_http_requests_total` by
//! code, method and operation), rendered in the text exposition format.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
}

impl Metrics {
    pub fn observe(&self, operation: &'static str, method: &str, code: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((operation, method.to_lowercase(), code)).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from("# HELP notary_server_http_requests_total Total number of HTTP requests made.\n# TYPE notary_server_http_requests_total counter\n");
        for ((op, method, code), n) in m.iter() {
            out.push_str(&format!("notary_server_http_requests_total{{code=\"{code}\",method=\"{method}\",operation=\"{op}\"}} {n}\n"));
        }
        out
    }
}
