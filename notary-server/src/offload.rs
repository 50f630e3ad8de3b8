//! CPU work on large inputs runs where it cannot stall other requests.
//!
//! The server's async workers (one per core) each carry many connections: a 20 ms burst on
//! one (the first gzip of a 4 MB targets file, hashing it when it is loaded, parsing and
//! checking a large upload) would hold every request queued behind it. Work on inputs of
//! [`LARGE`] bytes or more runs in place of the worker (`tokio::task::block_in_place`: the
//! worker's other requests move to another thread meanwhile); small inputs, where handing over
//! costs more than the work, run inline.
//!
//! 1. Every burst over about a millisecond on a request's path goes through [`run`]: the gzip
//!    copy (`storage::StoredFile::gzip`), the checksum of a loaded file
//!    (`storage::StoredFile::from_bytes`), parsing and validating an upload
//!    (`service::publish`). — measured by `scripts/bench.sh --stalls` (docs/performance.md).
//! 2. Outside a multi-threaded runtime (a unit test's, a tool's) the work runs inline.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Input size from which work moves off the async worker: about a millisecond of hashing,
/// compressing or parsing on this class of machine.
pub const LARGE: usize = 256 * 1024;

/// `f`, whose work grows with `input_bytes`, run where it cannot stall other requests when
/// the input is large (see the module).
pub fn run<T>(input_bytes: usize, f: impl FnOnce() -> T) -> T {
    let multi_threaded = Handle::try_current()
        .is_ok_and(|h| matches!(h.runtime_flavor(), RuntimeFlavor::MultiThread));
    if input_bytes >= LARGE && multi_threaded {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_inline_outside_a_multi_threaded_runtime() {
        assert_eq!(run(LARGE, || 7), 7);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(async { run(LARGE, || 8) }), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn large_work_leaves_the_worker_to_other_tasks() {
        use std::time::{Duration, Instant};
        // The only worker runs large work; a task spawned meanwhile is not held up by it.
        for (size, held_up) in [(LARGE, false), (LARGE - 1, true)] {
            let (started, is_started) = tokio::sync::oneshot::channel();
            let busy = tokio::spawn(async move {
                let _ = started.send(());
                run(size, || std::thread::sleep(Duration::from_millis(300)));
                Instant::now()
            });
            is_started.await.unwrap();
            let other = tokio::spawn(async { Instant::now() });
            let (other, busy) = (other.await.unwrap(), busy.await.unwrap());
            assert_eq!(other >= busy, held_up, "input of {size} bytes");
        }
    }
}
