//! Plumbing shared by the programs (`notary-server`, `notary-signer`, the tools and the bench),
//! and nothing of any one's domain:
//!
//! - [`db`]: one database handle for Postgres and SQLite, pool settings, migrations, and
//!   ([`db::hosts`]) several Postgres hosts with `target_session_attrs`, followed across fail-overs;
//! - [`reload`]: a value built from files and rebuilt when they change or on SIGHUP;
//! - [`tls`]: certificates and client-CA bundles that reload that way;
//! - [`private`]: files that hold keys or databases are private whatever the umask;
//! - [`logging`]: text or JSON logs with control characters escaped;
//! - [`env`]: configuration overrides from the environment, keys derived from the config types;
//! - [`sync`]: the one way a poisoned mutex is recovered;
//! - [`multipart`]: a publish's body as the Go client sends it;
//! - [`aws`]: the AWS SDK's configuration as every client here builds it;
//! - [`untrusted`]: reading input that crosses a boundary (files of a trust directory, text
//!   shown to an operator) within bounds, and escaping it for a terminal.

#![warn(missing_docs)]

pub mod aws;
pub mod db;
pub mod env;
pub mod logging;
pub mod multipart;
pub mod private;
pub mod reload;
pub mod sync;
pub mod tls;
pub mod untrusted;
