//! A value built from files and rebuilt, without a restart, when their modification times
//! change (checked every `period`) or on SIGHUP. A build that fails (an unreadable file, a
//! certificate caught half-written) is logged and the previous value stays in use. Used for the
//! server's HTTPS certificate, the signer's certificate and client-CA bundle, and the server's
//! TLS files for its signers (`notary-tools/tests/tls_reload.rs`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::sync::{lock, read, write};

/// Why a value could not be built from its files.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

type Build<T> = Box<dyn Fn() -> Result<T, BuildError> + Send + Sync>;

/// A value built from files, rebuilt when they change (see the module).
pub struct Reloading<T> {
    /// What the value is, for the log ("the TLS certificate").
    what: &'static str,
    files: Vec<PathBuf>,
    build: Build<T>,
    current: RwLock<Arc<T>>,
    stamp: Mutex<Option<Vec<SystemTime>>>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("files", &self.files)
            .finish()
    }
}

fn mtimes(files: &[PathBuf]) -> Option<Vec<SystemTime>> {
    files
        .iter()
        .map(|p| std::fs::metadata(p).ok()?.modified().ok())
        .collect()
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Build the value from `files` now (an error is returned, not logged).
    pub fn new(
        what: &'static str,
        files: Vec<PathBuf>,
        build: impl Fn() -> Result<T, BuildError> + Send + Sync + 'static,
    ) -> Result<Arc<Self>, BuildError> {
        let stamp = mtimes(&files);
        let value = build()?;
        Ok(Arc::new(Reloading {
            what,
            files,
            build: Box::new(build),
            current: RwLock::new(Arc::new(value)),
            stamp: Mutex::new(stamp),
        }))
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        read(&self.current).clone()
    }

    /// Rebuild if a file changed (or `force`); true if the value was replaced.
    pub fn reload_if_changed(&self, force: bool) -> bool {
        let now = mtimes(&self.files);
        if !force && (now.is_none() || now == *lock(&self.stamp)) {
            return false;
        }
        let files = format!("{:?}", self.files);
        match (self.build)() {
            Ok(v) => {
                *write(&self.current) = Arc::new(v);
                *lock(&self.stamp) = now;
                tracing::info!(files, forced = force, "reloaded {}", self.what);
                true
            }
            Err(e) => {
                tracing::error!(files, error = %e, "{} not reloaded; keeping the previous one", self.what);
                false
            }
        }
    }

    /// Reload on SIGHUP and when the files change (checked every `period`), in the background.
    pub fn spawn_watch(self: &Arc<Self>, period: Duration) {
        let me = Arc::downgrade(self);
        every_or_on_sighup(period, move |forced| {
            let alive = me.upgrade().map(|me| me.reload_if_changed(forced));
            std::future::ready(alive.is_some())
        });
    }
}

/// Run `f(false)` every `period` and `f(true)` on each SIGHUP, in the background, one at a
/// time, until it yields false.
pub fn every_or_on_sighup<F, Fut>(period: Duration, mut f: F)
where
    F: FnMut(bool) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let forced = tokio::select! {
                _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending::<()>().await } } => true,
                _ = tokio::time::sleep(period) => false,
            };
            if !f(forced).await {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_reloaded_and_a_bad_one_keeps_the_previous_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n");
        std::fs::write(&p, "1").unwrap();
        let path = p.clone();
        let r = Reloading::new("a number", vec![p.clone()], move || {
            Ok(std::fs::read_to_string(&path)?.trim().parse::<u32>()?)
        })
        .unwrap();
        assert_eq!(*r.get(), 1);
        assert!(!r.reload_if_changed(false), "nothing changed");
        std::fs::write(&p, "not a number").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(!r.reload_if_changed(false), "a bad file replaced the value");
        assert_eq!(*r.get(), 1);
        std::fs::write(&p, "2").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(later + Duration::from_secs(5))
            .unwrap();
        assert!(r.reload_if_changed(false));
        assert_eq!(*r.get(), 2);
        assert!(r.reload_if_changed(true), "forced");
    }
}
