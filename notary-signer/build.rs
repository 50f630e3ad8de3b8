// Compile proto/signer.proto with protox (a Rust protobuf compiler): no protoc binary needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/signer.proto");
    let fds = protox::compile(["proto/signer.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
