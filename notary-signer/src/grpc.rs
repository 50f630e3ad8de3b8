//! The generated gRPC code (package `proto`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("proto");
}
