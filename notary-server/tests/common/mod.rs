//! Test harness, by concern: our server ([`server`]), Debian's Go programs ([`go`]), signers
//! ([`signer`]), a registry token service ([`token`]), Docker ([`docker`]), test databases
//! ([`db`]) and the network ([`net`]). These tests need what `scripts/test.sh` sets up; they
//! are built with the `system-tests` feature (which that script turns on).
#![allow(dead_code, unused_imports)]

pub mod db;
pub mod docker;
pub mod fake_http;
pub mod go;
pub mod net;
pub mod server;
pub mod signer;
pub mod token;

pub use db::*;
pub use docker::*;
pub use fake_http::*;
pub use go::*;
pub use net::*;
pub use server::*;
pub use signer::*;
pub use token::*;
