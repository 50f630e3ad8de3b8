//! notary-server: a drop-in replacement for Docker's Go notary-server.

#![warn(missing_docs)]

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
pub mod retention;
pub mod role;
mod routes;
pub mod serve;
pub mod service;
pub mod storage;
pub mod tls;
