//! Waiting for something to happen: the tests' one deadline loop ([`eventually`]), its
//! blocking twin for code off the async runtime, and what most waits are for (a port).

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
