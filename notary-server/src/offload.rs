//! CPU work on large inputs runs where it cannot stall other requests.
//!
//! The server's async workers (one per core) each carry many connections: a 20 ms burst on
//! one (the first gzip of a 4 MB targets file, hashing it when it is loaded, parsing and
//! checking a large upload) would hold every request queued behind it. Work on inputs of
//! [`LARGE`] bytes or more leaves the workers; small inputs, where handing over costs more than
//! the work, run inline.
//!
//! 1. [`run`] hands the work to threads of their own that run at a lower priority (nice
//!    [`NICE`]) than the request threads, so that a request waiting for a core gets it first:
//!    the first gzip (`storage::StoredFile::gzip_ready`), parsing and validating an upload
//!    (`service::publish`). — `tests::large_work_leaves_the_worker_to_other_tasks`,
//!    `tests::large_work_runs_at_a_lower_priority`; measured by `scripts/bench.sh --stalls`
//!    (docs/performance.md).
//! 2. [`in_place`], for work inside code that cannot wait (the checksum of a file as it is
//!    loaded): the worker's other requests move to another thread meanwhile
//!    (`tokio::task::block_in_place`). — `tests::large_work_leaves_the_worker_to_other_tasks`.
//! 3. Outside a multi-threaded runtime (a unit test's, a tool's) the work runs inline.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::runtime::{Handle, RuntimeFlavor};

/// Input size from which work leaves the async workers: about a millisecond of hashing,
/// compressing or parsing on this class of machine.
pub(crate) const LARGE: usize = 256 * 1024;

/// The nice value of the threads large work runs on (request threads run at the process's).
pub(crate) const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

fn multi_threaded() -> bool {
    Handle::try_current().is_ok_and(|h| matches!(h.runtime_flavor(), RuntimeFlavor::MultiThread))
}

/// The threads of invariant 1, one per core, started at the first large work.
fn threads() -> &'static Sender<Job> {
    static THREADS: OnceLock<Sender<Job>> = OnceLock::new();
    THREADS.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let rx: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(rx));
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..n {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("notary-offload-{i}"))
                .spawn(move || {
                    // Linux keeps a nice value per thread: this one only.
                    let me = rustix::thread::gettid();
                    if let Err(e) = rustix::process::setpriority_process(Some(me), NICE) {
                        tracing::warn!(error = %e, "cannot lower the priority of an offload thread");
                    }
                    loop {
                        let job = notary_common::sync::lock(&rx).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start an offload thread");
            }
        }
        tx
    })
}

/// `f`, whose work grows with `input_bytes`: on a lower-priority thread of its own when the
/// input is large (invariant 1), inline otherwise. A panic in `f` is the caller's.
pub(crate) async fn run<T: Send + 'static>(
    input_bytes: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    if input_bytes < LARGE || !multi_threaded() {
        return f();
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    if let Err(std::sync::mpsc::SendError(job)) = threads().send(job) {
        // No offload thread could be started: run it here rather than not at all.
        job();
    }
    match rx.await {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("an offload thread dropped its work"),
    }
}

/// `f`, whose work grows with `input_bytes`, for code that cannot wait: in place of the async
/// worker when the input is large (invariant 2), inline otherwise.
pub(crate) fn in_place<T>(input_bytes: usize, f: impl FnOnce() -> T) -> T {
    if input_bytes >= LARGE && multi_threaded() {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn runs_inline_outside_a_multi_threaded_runtime() {
        assert_eq!(in_place(LARGE, || 7), 7);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(run(LARGE, || 8)), 8);
        assert_eq!(rt.block_on(async { in_place(LARGE, || 9) }), 9);
    }

    /// Whether a task spawned while the only worker runs `work` is held up until it ends.
    async fn holds_up_the_worker(
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> bool {
        let (started, is_started) = tokio::sync::oneshot::channel();
        let busy = tokio::spawn(async move {
            let _ = started.send(());
            work.await;
            Instant::now()
        });
        is_started.await.unwrap();
        let other = tokio::spawn(async { Instant::now() });
        let (other, busy) = (other.await.unwrap(), busy.await.unwrap());
        other >= busy
    }

    /// Large work through either way leaves the only worker to other tasks; work just under
    /// the size runs inline and holds it up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn large_work_leaves_the_worker_to_other_tasks() {
        let sleep = || std::thread::sleep(Duration::from_millis(300));
        for (size, held_up) in [(LARGE, false), (LARGE - 1, true)] {
            let ran = holds_up_the_worker(async move { run(size, sleep).await }).await;
            assert_eq!(ran, held_up, "run, input of {size} bytes");
            let placed = holds_up_the_worker(async move { in_place(size, sleep) }).await;
            assert_eq!(placed, held_up, "in_place, input of {size} bytes");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn large_work_runs_at_a_lower_priority() {
        let nice = |who| rustix::process::getpriority_process(Some(who)).unwrap();
        let request_thread = nice(rustix::thread::gettid());
        let offloaded = run(LARGE, move || nice(rustix::thread::gettid())).await;
        assert_eq!(offloaded, NICE.max(request_thread));
    }
}
