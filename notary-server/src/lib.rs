//! notary-server: the Notary HTTP service as a library — the API of Docker's Go notary-server
//! over Postgres or SQLite, its cache, read leases, token auth and audit trail. The programs that
//! run it (and the operator commands) are in notary-tools.

#![warn(missing_docs)]

/// What a validated name (`gun::Gun`, `role::Role`: a newtype over its text) reads as: a `&str`
/// (`as_str`, `Deref`, `AsRef`), shown as its text, compared with text.
macro_rules! name_type {
    ($t:ident) => {
        impl $t {
            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                *self.0 == *other
            }
        }

        impl PartialEq<$t> for String {
            fn eq(&self, other: &$t) -> bool {
                **self == *other.0
            }
        }
    };
}
pub(crate) use name_type;

pub mod audit;
pub mod auth;
pub mod cache;
pub mod coherence;
pub mod compression;
pub mod config;
mod errors;
pub mod gun;
pub mod http;
pub mod metrics;
pub(crate) mod offload;
pub mod publication;
pub mod retention;
pub mod role;
mod routes;
pub mod serve;
pub mod service;
pub mod storage;
pub mod tls;
