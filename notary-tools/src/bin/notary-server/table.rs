//! How the commands print: aligned, escaped tables and values for people.

/// Rows as aligned columns (the first row is the header), every cell escaped: GUNs, token
/// subjects and reasons are untrusted text.
pub(crate) fn print_table<R: AsRef<[String]>>(rows: &[R]) {
    print!("{}", notary_common::untrusted::table(rows));
}

/// A failed operation, with what was being done and its cause (printed as a chain).
pub(crate) fn failure(what: &str, e: notary_server::service::ServiceError) -> anyhow::Error {
    anyhow::Error::new(e).context(what.to_string())
}

/// Bytes for people: 812 B, 4.2 KiB, 1.3 MiB, 2.0 GiB.
pub(crate) fn human_bytes(n: i64) -> String {
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if unit == "B" {
                format!("{n} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    unreachable!()
}

pub(crate) fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn keys_held(ts: bool, sn: bool) -> &'static str {
    match (ts, sn) {
        (true, true) => "timestamp, snapshot",
        (true, false) => "timestamp",
        (false, true) => "snapshot",
        (false, false) => "none",
    }
}
