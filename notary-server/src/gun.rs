//! A GUN (globally unique name: the repository, e.g. `docker.io/library/alpine`), checked once
//! where it enters — route parsing (`http::guard`), the importer, the operator commands — and
//! passed as a [`Gun`] through the service and storage, which never see an unchecked name.
//!
//! The grammar (`http_api.rs`, `hardening.rs`, this module's tests):
//! 1. at most 255 bytes (the Go server's column);
//! 2. no control characters (it is logged and printed);
//! 3. no empty, `.` or `..` segment between slashes (it names paths in trust directories and
//!    static trees).

/// Longest GUN: the `gun` column of the Go schema.
pub(crate) const MAX_GUN_BYTES: usize = 255;

/// A GUN that satisfies the grammar above. Reads as a `&str` (`Deref`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Gun(String);

/// A name that is not a GUN this server accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "GUN must be at most 255 characters, without control characters or empty, '.' or '..' segments"
)]
pub struct InvalidGun;

impl Gun {
    /// Check `name` against the grammar (see the module).
    pub fn new(name: &str) -> Result<Gun, InvalidGun> {
        let ok = name.len() <= MAX_GUN_BYTES
            && !name.chars().any(char::is_control)
            && !name
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..");
        if ok {
            Ok(Gun(name.to_string()))
        } else {
            Err(InvalidGun)
        }
    }

    /// A name read back from our own storage, where only checked GUNs are written (and the
    /// Go server's, whose grammar is the same or stricter).
    pub fn stored(name: String) -> Gun {
        Gun(name)
    }
}

crate::name_type!(Gun);

impl std::str::FromStr for Gun {
    type Err = InvalidGun;
    fn from_str(s: &str) -> Result<Gun, InvalidGun> {
        Gun::new(s)
    }
}

/// A GUN a test knows to be valid.
#[cfg(test)]
pub(crate) fn gun(name: &str) -> Gun {
    Gun::new(name).expect("a GUN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar() {
        assert!(Gun::new("docker.io/library/alpine").is_ok());
        assert!(Gun::new("localhost:5000/a").is_ok());
        assert_eq!(Gun::new("a/../b"), Err(InvalidGun));
        assert_eq!(Gun::new("a//b"), Err(InvalidGun));
        assert_eq!(Gun::new("a/./b"), Err(InvalidGun));
        assert_eq!(Gun::new("a\nb"), Err(InvalidGun));
        assert_eq!(Gun::new(&"a".repeat(256)), Err(InvalidGun));
        assert!(Gun::new(&"a".repeat(255)).is_ok());
        assert_eq!(Gun::new("x/y").unwrap().to_string(), "x/y");
    }
}
