//! notary-server: a drop-in replacement for Docker's Go notary-server.

pub mod announce;
pub mod auth;
pub mod cache;
pub mod client;
pub mod config;
pub mod errors;
pub mod freshness;
pub mod http;
pub mod import;
pub mod metrics;
pub mod rekey;
pub mod routes;
pub mod serve;
pub mod service;
pub mod storage;
pub mod tls;
