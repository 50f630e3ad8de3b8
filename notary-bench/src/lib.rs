//! notary-bench: the load generator and its plots, and the Rust TUF client the tests publish
//! with (a repository signed in Rust, spoken to over HTTPS).

#![warn(missing_docs)]

pub mod conn;
pub mod load;
pub mod procfs;
pub mod repo;
