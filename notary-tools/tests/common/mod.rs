//! Test harness, by concern: our server ([`server`]), Debian's Go programs ([`go`]), signers
//! ([`signer`]), a registry token service ([`token`]), Docker ([`docker`]), moto's AWS
//! endpoints ([`moto`]), test databases ([`db`]), the network ([`net`]) and waiting
//! ([`wait`]). These tests need what `scripts/test.sh` sets up; they are built with the
//! `system-tests` feature (which that script turns on).
#![allow(dead_code, unused_imports)]

pub(crate) mod db;
pub(crate) mod docker;
pub(crate) mod fake_http;
pub(crate) mod go;
pub(crate) mod moto;
pub(crate) mod net;
pub(crate) mod server;
pub(crate) mod signer;
pub(crate) mod token;
pub(crate) mod wait;

pub(crate) use db::*;
pub(crate) use docker::*;
pub(crate) use fake_http::*;
pub(crate) use go::*;
pub(crate) use moto::*;
pub(crate) use net::*;
pub(crate) use server::*;
pub(crate) use signer::*;
pub(crate) use token::*;
pub(crate) use wait::*;
