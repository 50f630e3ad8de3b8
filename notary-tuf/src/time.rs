//! `expires` handling: parse RFC 3339 as Go's `time.Time` JSON decoding does and write Go's
//! RFC3339Nano form (UTC as `Z`, fractional seconds with trailing zeros trimmed).

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Timelike, Utc};

/// An RFC 3339 time as Go parses it (any fraction, any offset).
pub fn parse_rfc3339(s: &str) -> Option<DateTime<FixedOffset>> {
    // Go's layout requires an upper-case 'T' and either 'Z' or a numeric offset.
    if !s.contains('T') {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

/// Go `time.RFC3339Nano` formatting of a UTC instant.
pub fn format_go(t: &DateTime<Utc>) -> String {
    let base = t.to_rfc3339_opts(SecondsFormat::Secs, true); // ...:SSZ
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos == 0 {
        return base;
    }
    let mut frac = format!("{nanos:09}");
    while frac.ends_with('0') {
        frac.pop();
    }
    format!("{}.{}Z", &base[..base.len() - 1], frac)
}

/// Default expiry durations (const.go: year = 365 days).
pub fn snapshot_expiry(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::days(3 * 365)
}
/// When a timestamp made at `now` expires (14 days).
pub fn timestamp_expiry(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::days(14)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        let t = parse_rfc3339("2026-12-07T01:06:48.457686259Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_go(&t), "2026-12-07T01:06:48.457686259Z");
        let t = parse_rfc3339("2030-01-01T00:00:00.120+00:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_go(&t), "2030-01-01T00:00:00.12Z");
        let t = parse_rfc3339("2030-01-01T00:00:00-05:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_go(&t), "2030-01-01T05:00:00Z");
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(parse_rfc3339("2030-01-01").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("2030-01-01 00:00:00Z").is_none());
    }
}
