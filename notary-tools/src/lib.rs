//! notary-tools: what runs beside the service rather than inside it. The `notary-server`
//! program (serving, through the `notary-server` library, and the operator commands),
//! `notary-rekey`, the importer and the client of other Notary servers they share. The
//! library that serves HTTP carries none of the client stack (reqwest, progress bars,
//! passphrase prompts): it is here, as tuftool stands beside tough.

#![warn(missing_docs)]

pub mod bundle;
pub mod client;
pub mod import;
pub mod mirror;
pub mod rekey;
