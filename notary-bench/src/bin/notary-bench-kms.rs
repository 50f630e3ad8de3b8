//! notary-bench-kms: what one signature costs with the AWS KMS key store
//! (`notary_signer::kms`), against a KMS endpoint (`scripts/bench.sh --kms` runs moto): a
//! whole signature through the store, the KMS `Sign` round trip alone, and the store's own
//! work per signature (DER to `r‖s`, checked against the public key). moto's latency is not
//! AWS's; the store's own work is the same against either.

use std::time::{Duration, Instant};

use clap::Parser;
use notary_signer::kms::{raw_signature, KmsConfig, KmsKeyStore};
use notary_signer::CryptoService;

#[derive(Parser, Debug)]
#[command(name = "notary-bench-kms")]
struct Args {
    /// The KMS endpoint (credentials from the AWS chain).
    #[arg(long)]
    endpoint: Option<String>,
    /// The region.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Signatures per measurement.
    #[arg(long, default_value_t = 200)]
    signatures: usize,
}

fn quantiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let q = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    (q(0.5), q(0.99))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let store = KmsKeyStore::open(&KmsConfig {
        region: Some(a.region.clone()),
        endpoint: a.endpoint.clone(),
    })
    .await?;
    let public = store
        .create_key("timestamp", "bench.example.com/kms", "ecdsa")
        .await?;
    let id = public.id();
    // A timestamp body's size.
    let msg = vec![b'x'; 600];
    store.sign(&id, &msg).await?; // its first use: the key's state is checked once
    let mut whole = Vec::with_capacity(a.signatures);
    for _ in 0..a.signatures {
        let t = Instant::now();
        store.sign(&id, &msg).await?;
        whole.push(t.elapsed());
    }
    let mut kms = Vec::with_capacity(a.signatures);
    let mut der = Vec::new();
    for _ in 0..a.signatures {
        let t = Instant::now();
        der = store.sign_der(&id, &msg).await?;
        kms.push(t.elapsed());
    }
    let rounds = a.signatures * 20;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(raw_signature(&id, &public, &msg, &der)?);
    }
    let own_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let (w50, w99) = quantiles(whole);
    let (k50, k99) = quantiles(kms);
    println!("{:<44} {:>9} {:>9}", "per signature", "p50 ms", "p99 ms");
    println!(
        "{:<44} {w50:>9.2} {w99:>9.2}",
        "through the store (CryptoService::sign)"
    );
    println!("{:<44} {k50:>9.2} {k99:>9.2}", "KMS Sign round trip alone");
    println!(
        "the store's own work per signature (DER to r||s, checked against the key): {own_us:.0} µs ({} signatures)",
        a.signatures
    );
    Ok(())
}
