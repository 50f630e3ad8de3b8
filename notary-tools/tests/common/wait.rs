//! Waiting for something to happen: the tests' one deadline loop ([`eventually`]), its
//! blocking twin for code off the async runtime, and what most waits are for: a port, a
//! process that starts.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Try `attempt` every `every` until it answers `Ok`, for at most `within`; then fail with the
/// last `Err`, which says what was seen (the tests' one deadline loop).
pub(crate) async fn eventually<T>(
    within: Duration,
    every: Duration,
    mut attempt: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(why) if Instant::now() >= deadline => panic!("not within {within:?}: {why}"),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// [`eventually`] for code that does not run on the async runtime (a `Drop`, a thread).
pub(crate) fn eventually_blocking<T>(
    within: Duration,
    every: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match attempt() {
            Ok(v) => return v,
            Err(why) if Instant::now() >= deadline => panic!("not within {within:?}: {why}"),
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// Wait up to 20 s until something listens on `port` of 127.0.0.1 (`what` names it).
pub(crate) fn wait_for_port(port: u16, what: &str) {
    eventually_blocking(Duration::from_secs(20), Duration::from_millis(50), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map(drop)
            .map_err(|e| format!("{what} does not listen on {port}: {e}"))
    })
}

/// Wait up to 30 s, trying every `every`, until a process that was just started is `ready`;
/// fail at once if it exits meanwhile. Both failures name `what` and quote its `log` file.
pub(crate) async fn started(
    what: &str,
    child: &mut Child,
    log: &Path,
    every: Duration,
    mut ready: impl AsyncFnMut() -> bool,
) {
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    eventually(Duration::from_secs(30), every, async || {
        if ready().await {
            return Ok(());
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("{what} exited with {st}: {}", log());
        }
        Err(format!("{what} not ready: {}", log()))
    })
    .await
}

/// Whether a Notary server at `url` answers the ping (200, or 401 with token auth; its health
/// may rightly be 503, e.g. with its signer unreachable).
pub(crate) async fn answers_ping(http: &reqwest::Client, url: &str) -> bool {
    http.get(format!("{url}/v2/"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200 || r.status() == 401)
}
