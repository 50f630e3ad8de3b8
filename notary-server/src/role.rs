//! A role name (`root`, `targets`, `snapshot`, `timestamp`, or a delegation `targets/…`),
//! checked once where it enters — route parsing (`http`), a publish's parts — and passed as a
//! [`Role`] through the service and storage. The grammar is Notary's
//! (`notary_tuf::metadata::is_valid_role`, tested there and in `publish_rules.rs`).

use std::borrow::Cow;
use std::fmt;

use notary_tuf::metadata as md;

/// A valid role name. Reads as a `&str` (`Deref`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Role(Cow<'static, str>);

/// A name that is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a role name: root, targets, snapshot, timestamp or a delegation targets/…")]
pub struct InvalidRole;

impl Role {
    /// The root role.
    pub const ROOT: Role = Role(Cow::Borrowed(md::ROOT));
    /// The top-level targets role.
    pub const TARGETS: Role = Role(Cow::Borrowed(md::TARGETS));
    /// The snapshot role.
    pub const SNAPSHOT: Role = Role(Cow::Borrowed(md::SNAPSHOT));
    /// The timestamp role.
    pub const TIMESTAMP: Role = Role(Cow::Borrowed(md::TIMESTAMP));

    /// Check `name` against Notary's role grammar.
    pub fn new(name: &str) -> Result<Role, InvalidRole> {
        match name {
            md::ROOT => Ok(Role::ROOT),
            md::TARGETS => Ok(Role::TARGETS),
            md::SNAPSHOT => Ok(Role::SNAPSHOT),
            md::TIMESTAMP => Ok(Role::TIMESTAMP),
            _ if md::is_valid_role(name) => Ok(Role(Cow::Owned(name.to_string()))),
            _ => Err(InvalidRole),
        }
    }

    /// A name read back from metadata this server stored (checked when it was published).
    pub fn stored(name: &str) -> Role {
        Role::new(name).unwrap_or_else(|_| Role(Cow::Owned(name.to_string())))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Role {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Role {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for Role {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<Role> for String {
    fn eq(&self, other: &Role) -> bool {
        **self == *other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar() {
        assert_eq!(Role::new("timestamp"), Ok(Role::TIMESTAMP));
        assert_eq!(
            Role::new("targets/releases").unwrap().as_str(),
            "targets/releases"
        );
        assert_eq!(Role::new("targets/"), Err(InvalidRole));
        assert_eq!(Role::new("targets/A"), Err(InvalidRole));
        assert_eq!(Role::new("snapshots"), Err(InvalidRole));
        assert_eq!(Role::new(""), Err(InvalidRole));
    }
}
