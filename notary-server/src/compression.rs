//! Compressed copies of large metadata files, served to clients that accept gzip.
//!
//! 1. A file of at least `caching.gzip_min_bytes` (default 8 KiB; 0 turns this off) keeps a
//!    gzip copy beside its exact bytes, made once, when a client first asks for it (publishes
//!    and internal reads never pay for it), shared by every holder of the file, and counted in
//!    the cache's byte budget at its upper bound (the file's own size: a copy that is not
//!    smaller is not kept). — `compression::tests::large_files_get_a_copy_that_inflates_back`.
//! 2. It is served (`Content-Encoding: gzip`, a weak ETag) only to a request whose
//!    `Accept-Encoding` takes gzip; every response of such a file says `Vary: Accept-Encoding`.
//!    Go's HTTP client asks for gzip and inflates transparently, so the notary CLI and docker
//!    verify the same bytes as before: hashes and signatures are over the uncompressed file.
//!    — `compression::tests::accept_encoding_is_read_as_rfc_9110_says`,
//!    `gzip::go_clients_read_compressed_metadata`.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `caching.gzip_min_bytes` when not configured.
pub(crate) const DEFAULT_MIN_BYTES: usize = 8192;

static MIN_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MIN_BYTES);

/// Set the size from which files keep a compressed copy (0: never), at start.
pub fn set_min_bytes(n: usize) {
    MIN_BYTES.store(n, Ordering::Relaxed);
}

/// Whether a file of `len` bytes gets a gzip copy.
pub(crate) fn eligible(len: usize) -> bool {
    let min = MIN_BYTES.load(Ordering::Relaxed);
    min != 0 && len >= min
}

/// The gzip copy of `data`, if it is large enough and compresses at all. The fastest level:
/// the bulk of TUF metadata is hashes, which no level compresses, and a 4 MB targets file then
/// takes tens of milliseconds rather than a hundred.
pub(crate) fn gzip_copy(data: &[u8]) -> Option<bytes::Bytes> {
    if !eligible(data.len()) {
        return None;
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::fast(),
    );
    enc.write_all(data).ok()?;
    let out = enc.finish().ok()?;
    (out.len() < data.len()).then(|| out.into())
}

/// Whether an `Accept-Encoding` value takes gzip (`gzip`, `x-gzip` or `*`, with q > 0).
pub(crate) fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(v) = accept_encoding else {
        return false;
    };
    v.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        matches!(coding.as_str(), "gzip" | "x-gzip" | "*") && q > 0.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn large_files_get_a_copy_that_inflates_back() {
        let small = br#"{"signed":{}}"#;
        assert!(gzip_copy(small).is_none());
        let large: Vec<u8> = (0..2000)
            .flat_map(|i| format!("{{\"target{i}\":{{\"length\":{i}}}}},").into_bytes())
            .collect();
        let gz = gzip_copy(&large).expect("a copy");
        assert!(gz.len() < large.len() / 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, large);
    }

    #[test]
    fn accept_encoding_is_read_as_rfc_9110_says() {
        for yes in ["gzip", "deflate, gzip;q=0.5", "x-gzip", "*", "br, GZIP"] {
            assert!(accepts_gzip(Some(yes)), "{yes}");
        }
        for no in ["", "identity", "gzip;q=0", "br", "gzip; q=0.0"] {
            assert!(!accepts_gzip(Some(no)), "{no}");
        }
        assert!(!accepts_gzip(None));
    }
}
