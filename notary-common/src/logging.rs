//! Logging for both binaries: text (default) or JSON lines on standard error, with every
//! control character a client could slip into a field (a newline forging a whole line, ANSI
//! escapes) written escaped (`notary-tools/tests/hardening.rs::client_text_cannot_forge_log_lines`).

use std::io::Write;

/// Standard error, escaping control characters inside each event (one write per event).
pub struct EscapingStderr;

impl Write for EscapingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, end) = match buf.split_last() {
            Some((b'\n', body)) => (body, &b"\n"[..]),
            _ => (buf, &b""[..]),
        };
        let mut out = Vec::with_capacity(buf.len() + 8);
        for &b in body {
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            } else {
                out.push(b);
            }
        }
        out.extend_from_slice(end);
        std::io::stderr().lock().write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Install the global subscriber: `level` (Go's names accepted), `format` `text` or `json`,
/// `RUST_LOG` overriding the filter; `quiet` modules are held at warn.
pub fn init(level: &str, format: &str, quiet: &str) {
    let level = match level {
        "warning" => "warn",
        "fatal" | "panic" => "error",
        l => l,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},{quiet}")));
    // No colours: escape codes would be escaped like a client's.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| EscapingStderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}
