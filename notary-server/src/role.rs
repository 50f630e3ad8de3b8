//! A role name (`root`, `targets`, `snapshot`, `timestamp`, or a delegation `targets/…`),
//! checked once where it enters — route parsing (`http`), a publish's parts — and passed as a
//! [`Role`] through the service and storage. The grammar is Notary's
//! (`notary_tuf::metadata::is_valid_role`, tested there and in `publish_rules.rs`).

use std::borrow::Cow;

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
}

crate::name_type!(Role);

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
