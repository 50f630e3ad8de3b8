//! The generated gRPC code (package `proto`).
#[allow(clippy::all, missing_docs, unused_qualifications, unreachable_pub)]
pub mod proto {
    tonic::include_proto!("proto");
}
