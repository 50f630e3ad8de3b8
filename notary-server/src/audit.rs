//! The audit trail: who changed what, and when.
//!
//! 1. Every write is recorded: a publish (the roles and versions it stored), a deletion (through
//!    the API or `notary-server delete`), a key created or rotated through the API, an import.
//!    — `admin::every_write_is_in_the_audit_trail`.
//! 2. A publish or deletion and its record are one statement (Postgres) or one transaction
//!    (SQLite): no write without its record, no record of a write that did not happen. Key and
//!    import records follow their write at once (the key lives in the signer, the import has a
//!    report of its own). — `admin::every_write_is_in_the_audit_trail`.
//! 3. A record names the token's subject when token auth is on, the client address and the
//!    request id (a client's `X-Request-Id` if it is short and printable, else one made here;
//!    every response carries it back). — `admin::the_token_subject_is_recorded`.
//! 4. Each record is also logged as one event (target `notary_rs::audit`), with the same
//!    fields. — `admin::every_write_is_in_the_audit_trail`.
//! 5. Retention (`prune`) keeps the trail unless asked (`--audit-older-than`).

use chrono::NaiveDateTime;

/// What a write was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A publish.
    Publish,
    /// A deletion of a repository.
    Delete,
    /// A server key made for a repository.
    KeyCreate,
    /// A server key replaced by a rotation.
    KeyRotate,
    /// A history imported from another server.
    Import,
    /// Old versions removed by retention (`retention`).
    Prune,
}

impl Action {
    /// The name the audit trail stores and shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Delete => "delete",
            Action::KeyCreate => "key-create",
            Action::KeyRotate => "key-rotate",
            Action::Import => "import",
            Action::Prune => "prune",
        }
    }
}

/// Who made a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The token's subject (`sub`), when token auth is on; `admin:<user>` for admin commands.
    pub subject: Option<String>,
    /// The client's address (as the server saw it).
    pub client: Option<String>,
    /// The request's ID (`X-Request-ID`, echoed in the answer).
    pub request_id: Option<String>,
    /// Why (admin deletions require one).
    pub reason: Option<String>,
}

impl Actor {
    /// An operator's command on this machine (`notary-server delete`, `import`): the subject
    /// is the OS account the process runs as (`admin:root`), which the environment cannot
    /// change; under sudo, the invoking user as `SUDO_USER` claims it is added
    /// (`admin:root sudo:alice`), for what a claim is worth (docs/operations.md).
    pub fn admin(reason: Option<String>) -> Actor {
        let mut subject = format!("admin:{}", os_user());
        if let Ok(sudo) = std::env::var("SUDO_USER") {
            subject.push_str(&format!(" sudo:{sudo}"));
        }
        Actor {
            subject: Some(subject),
            client: None,
            request_id: Some(new_request_id()),
            reason,
        }
    }
}

/// The name of the account this process runs as (its effective user, the owner of
/// `/proc/self`), from `/etc/passwd`; `uid:N` when it has no name there.
fn os_user() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".into();
    };
    let passwd =
        notary_common::untrusted::read_regular_file(std::path::Path::new("/etc/passwd"), 16 << 20)
            .unwrap_or_default();
    String::from_utf8_lossy(&passwd)
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

/// One write to record: the action, the repository, the roles and versions it stored
/// (`targets:3,snapshot:3,timestamp:3`; empty for a deletion) and who made it.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// What was done.
    pub action: Action,
    /// To which repository.
    pub gun: &'a str,
    /// The roles written (or `role:key ID` for keys).
    pub roles: String,
    /// Who did it.
    pub actor: &'a Actor,
}

impl Record<'_> {
    /// The log event of this record (4).
    pub fn log(&self) {
        tracing::info!(
            target: "notary_rs::audit",
            action = self.action.as_str(),
            gun = self.gun,
            roles = self.roles.as_str(),
            subject = self.actor.subject.as_deref().unwrap_or(""),
            client = self.actor.client.as_deref().unwrap_or(""),
            request_id = self.actor.request_id.as_deref().unwrap_or(""),
            reason = self.actor.reason.as_deref().unwrap_or(""),
            "audit"
        );
    }
}

/// A stored record, as `notary-server audit` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// The record's ID.
    pub id: i64,
    /// When.
    #[serde(serialize_with = "rfc3339")]
    pub at: NaiveDateTime,
    /// What was done (`Action::as_str`).
    pub action: String,
    /// The repository.
    pub gun: String,
    /// The roles written.
    pub roles: String,
    /// The token subject or `admin:<user>`.
    pub subject: Option<String>,
    /// The client's address.
    pub client: Option<String>,
    /// The request's ID.
    pub request_id: Option<String>,
    /// Why (deletions by an operator).
    pub reason: Option<String>,
}

fn rfc3339<S: serde::Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(
        &t.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// A fresh request id, 32 hex digits: a random prefix drawn once per process (ids of
/// instances differ), then a counter — no system call on the request path.
pub(crate) fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| rand_core::RngCore::next_u64(&mut rand_core::OsRng));
    format!("{prefix:016x}{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A client's `X-Request-Id`, kept if it is 1–64 printable ASCII characters without spaces.
pub(crate) fn accept_request_id(given: Option<&str>) -> String {
    match given {
        Some(id)
            if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.to_string()
        }
        _ => new_request_id(),
    }
}

/// `role:version` pairs, as stored in `roles`.
pub(crate) fn roles_of<'a>(pairs: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    pairs
        .into_iter()
        .map(|(r, v)| format!("{r}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_request_id_is_kept_only_when_sane() {
        assert_eq!(accept_request_id(Some("abc-123")), "abc-123");
        for bad in [
            Some(""),
            Some("has space"),
            Some("ctl\u{7}"),
            Some(&"x".repeat(65)[..]),
            None,
        ] {
            let id = accept_request_id(bad);
            assert_eq!(id.len(), 32, "{bad:?}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn roles_are_listed_as_role_colon_version() {
        assert_eq!(
            roles_of([("targets", 3), ("snapshot", 3)]),
            "targets:3,snapshot:3"
        );
    }
}
