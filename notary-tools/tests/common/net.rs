//! Ports and a TCP forwarder standing in for a network path.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Send a signal (`HUP`, `STOP`, `CONT`, `KILL`…) to a process.
pub(crate) fn signal(child: &Child, sig: &str) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([&format!("-{sig}"), &pid])
        .status()
        .unwrap()
        .success());
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP forwarder standing in for a network path (to the database, or from a load balancer to
/// an instance); stopping it cuts every connection, as a restart or a network split does.
/// Clones share the same forwarder.
#[derive(Clone)]
pub(crate) struct Proxy {
    pub port: u16,
    pub upstream: String,
    /// Where new connections go (`upstream` until [`Proxy::point_to`]).
    target: std::sync::Arc<std::sync::Mutex<String>>,
    pub tasks: std::sync::Arc<tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Silently drop everything (a partition that sends no reset): connections stay open,
    /// nothing is forwarded.
    blackhole: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Proxy {
    pub(crate) fn new(upstream: String) -> Proxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::with_port(port, upstream)
    }

    /// On a given port (e.g. the port of a stopped proxy, re-pointed elsewhere).
    pub(crate) fn with_port(port: u16, upstream: String) -> Proxy {
        Proxy {
            port,
            target: std::sync::Arc::new(std::sync::Mutex::new(upstream.clone())),
            upstream,
            tasks: Default::default(),
            blackhole: std::sync::Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    pub(crate) async fn start(&self) {
        self.blackhole.send_replace(false);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let target = self.target.clone();
        let tasks = self.tasks.clone();
        let blackhole = self.blackhole.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = target.lock().unwrap().clone();
                let mut dark = blackhole.subscribe();
                let conn = tokio::spawn(async move {
                    let is_dark = *dark.borrow();
                    if is_dark {
                        // Accepted, never answered.
                        let _held = client;
                        return std::future::pending::<()>().await;
                    }
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = async { let _ = dark.wait_for(|d| *d).await; } => {
                                // Keep both ends open and silent.
                                std::future::pending::<()>().await
                            }
                        }
                    }
                });
                tasks.lock().await.push(conn);
            }
        });
        self.tasks.lock().await.push(accept);
    }

    /// Send new connections to `upstream` from now on; established ones stay where they are (a
    /// balancer re-pointed after a fail-over, with the old node's sessions still open).
    pub(crate) fn point_to(&self, upstream: &str) {
        *self.target.lock().unwrap() = upstream.to_string();
    }

    /// Stop forwarding without closing anything: packets are "dropped" both ways, new
    /// connections hang. `stop` then `start` heals it (dropping the held connections).
    pub(crate) fn blackhole(&self) {
        self.blackhole.send_replace(true);
    }

    pub(crate) async fn stop(&self) {
        for t in self.tasks.lock().await.drain(..) {
            t.abort();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// The database URL, routed through this proxy.
    pub(crate) fn url(&self, db_url: &str) -> String {
        db_url.replace(&self.upstream, &format!("127.0.0.1:{}", self.port))
    }
}

pub(crate) fn host_port(db_url: &str) -> String {
    let after_at = db_url.split('@').nth(1).unwrap();
    after_at.split('/').next().unwrap().to_string()
}

/// Debian's HAProxy with the given configuration (written into `dir` with its log), stopped on
/// drop.
pub(crate) struct Haproxy {
    child: Child,
    log: PathBuf,
}

impl Haproxy {
    pub(crate) fn start(dir: &Path, cfg: &str) -> Haproxy {
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let log = dir.join("haproxy.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("haproxy (apt-get install haproxy)");
        Haproxy { child, log }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
