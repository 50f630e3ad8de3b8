//! Postgres URLs as libpq takes them with several hosts and `target_session_attrs`
//! (`postgres://u@db1:5432,db2:5432/notary?target_session_attrs=read-write`): the hosts are
//! tried in order and the first whose session fits is used — at start, and again whenever
//! the one in use stops answering or answers read-only (a fail-over), without a restart
//! (`replica::a_writer_given_every_host_follows_the_primary`).

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::Connection;

use super::DbError;

/// libpq's `target_session_attrs`, as far as a server needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAttrs {
    /// Any host that answers (libpq's default).
    Any,
    /// A host that accepts writes (`read-write`, `primary`).
    ReadWrite,
    /// A host in recovery or read-only (`read-only`, `standby`).
    ReadOnly,
    /// A standby if one answers, else any (`prefer-standby`).
    PreferStandby,
}

/// The hosts of one URL, each as its own connect options, and what a session must be.
#[derive(Debug, Clone)]
pub struct Hosts {
    /// `host:port` and its connect options, in the URL's order.
    pub hosts: Vec<(String, PgConnectOptions)>,
    /// What the session must be (`target_session_attrs`).
    pub attrs: SessionAttrs,
}

impl Hosts {
    /// Split a Postgres URL into one URL per host (the rest of it unchanged, without
    /// `target_session_attrs`, which is ours to apply).
    pub fn parse(url: &str) -> Result<Hosts, DbError> {
        let bad = |why: &str| DbError::BadUrl(format!("{why}: {}", super::redacted(url)));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), authority),
        };
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut attrs = SessionAttrs::Any;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("target_session_attrs", v)) => {
                    attrs = match v {
                        "any" => SessionAttrs::Any,
                        "read-write" | "primary" => SessionAttrs::ReadWrite,
                        "read-only" | "standby" => SessionAttrs::ReadOnly,
                        "prefer-standby" => SessionAttrs::PreferStandby,
                        other => {
                            return Err(bad(&format!(
                                "target_session_attrs={other} is not one of any, read-write, primary, read-only, standby, prefer-standby"
                            )))
                        }
                    }
                }
                _ => kept.push(pair),
            }
        }
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };
        let mut hosts = Vec::new();
        for host in hostlist.split(',') {
            if host.is_empty() {
                return Err(bad("an empty host in the host list"));
            }
            let one = format!("{scheme}://{userinfo}{host}{path}{query}");
            let opts = PgConnectOptions::from_str(&one)?;
            hosts.push((host.to_string(), opts));
        }
        Ok(Hosts { hosts, attrs })
    }

    /// Whether more than a plain single-host URL was given.
    pub fn is_list(&self) -> bool {
        self.hosts.len() > 1 || self.attrs != SessionAttrs::Any
    }

    /// The first host whose session fits, tried in order (each within `timeout`): its name
    /// and options. The error names every host and why it was passed over. A plain URL (one
    /// host, any session) is not probed.
    pub async fn pick(&self, timeout: Duration) -> Result<(String, PgConnectOptions), DbError> {
        // One host, any session: nothing to choose (its errors surface when the pool connects).
        if !self.is_list() {
            let (name, opts) = &self.hosts[0];
            return Ok((name.clone(), opts.clone()));
        }
        let mut why = Vec::new();
        let mut any_standby_fallback = None;
        // Worth retrying unless every host refused for good (bad password, no such database).
        let mut transient = false;
        for (name, opts) in &self.hosts {
            let read_only = match tokio::time::timeout(timeout, read_only(opts)).await {
                Ok(Ok(ro)) => ro,
                Ok(Err(e)) => {
                    transient |= super::is_unavailable(&e);
                    why.push(format!("{name}: {e}"));
                    continue;
                }
                Err(_) => {
                    transient = true;
                    why.push(format!("{name}: no answer within {timeout:?}"));
                    continue;
                }
            };
            // A host that answered but does not fit may fit after a fail-over.
            transient = true;
            let fits = match self.attrs {
                SessionAttrs::Any => true,
                SessionAttrs::ReadWrite => !read_only,
                SessionAttrs::ReadOnly | SessionAttrs::PreferStandby => read_only,
            };
            if fits {
                return Ok((name.clone(), opts.clone()));
            }
            if self.attrs == SessionAttrs::PreferStandby && any_standby_fallback.is_none() {
                any_standby_fallback = Some((name.clone(), opts.clone()));
            }
            why.push(format!(
                "{name}: {}",
                if read_only { "read-only" } else { "read-write" }
            ));
        }
        if let Some(f) = any_standby_fallback {
            return Ok(f);
        }
        let why = why.join("; ");
        Err(DbError::NoHost {
            msg: match self.attrs {
                SessionAttrs::Any => format!("no host answered ({why})"),
                attrs => format!("no host fits target_session_attrs={attrs:?} ({why})"),
            },
            transient,
        })
    }
}

/// Whether the server at `opts` is read-only (in recovery, or read-only by default).
async fn read_only(opts: &PgConnectOptions) -> Result<bool, sqlx::Error> {
    let mut c = sqlx::PgConnection::connect_with(opts).await?;
    let ro = super::session_read_only(&mut c).await?;
    let _ = c.close().await;
    Ok(ro)
}

/// Wakes the host watchers: the database in use stopped answering or answered read-only.
pub(crate) fn repick() -> &'static tokio::sync::Notify {
    static N: OnceLock<tokio::sync::Notify> = OnceLock::new();
    N.get_or_init(tokio::sync::Notify::new)
}

/// Keep `pool` on a fitting host of `hosts`: re-pick when woken ([`repick`]) and at least every
/// 30 s, and point the pool's new connections there (sessions on the old host are dropped as
/// they fail, or by the writing pool's read-only check).
pub(crate) fn watch(pool: sqlx::PgPool, hosts: Hosts, mut current: String) {
    tokio::spawn(async move {
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(30), repick().notified()).await;
            if pool.is_closed() {
                return;
            }
            match hosts.pick(Duration::from_secs(3)).await {
                Ok((name, opts)) if name != current => {
                    tracing::warn!(target: "notary_rs::database", from = %current, to = %name, "the database host changed (fail-over); new connections go to the new one");
                    pool.set_connect_options(opts);
                    current = name;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(target: "notary_rs::database", error = %e, "no database host fits yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    repick().notify_one();
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_are_split_as_libpq_reads_them() {
        let h = Hosts::parse(
            "postgres://u:secret@db1:5432,db2:5433/notary?sslmode=disable&target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(h.attrs, SessionAttrs::ReadWrite);
        let names: Vec<&str> = h.hosts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["db1:5432", "db2:5433"]);
        assert_eq!(h.hosts[1].1.get_port(), 5433);
        assert_eq!(h.hosts[1].1.get_database(), Some("notary"));
        assert!(h.is_list());
        let plain = Hosts::parse("postgres://u@db1/notary").unwrap();
        assert!(!plain.is_list());
        let e = Hosts::parse("postgres://u:secret@db1/n?target_session_attrs=sometimes")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("target_session_attrs=sometimes") && !e.contains("secret"),
            "{e}"
        );
        assert!(Hosts::parse("postgres://u@db1,,db2/n").is_err());
    }
}
