//! notary-bench-upload: what the server's CPU work on one large upload costs, apart from the
//! network and the database (`scripts/bench.sh --upload`). A repository with `--targets`
//! targets is stored (root, targets, snapshot, timestamp, as the server would hold them); the
//! upload is its next targets file with one target changed, as `notary-bench`'s large
//! publishes send. For each of `--rounds` rounds it times `SignedFile::parse_bytes` on the
//! upload (its bytes kept, not copied, as the server keeps what it received) and
//! `validation::validate_update` on the parsed upload (what `service::publish` runs before it
//! signs and stores), and reports the p50 of each, with the peak heap allocated during one
//! parse and validation per upload byte (a counting allocator: the bytes held at once, the
//! upload itself not counted).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use notary_bench::repo::{far_future, RustRepo};
use notary_tuf::builder::{sign, snapshot_body, Signer};
use notary_tuf::metadata as md;
use notary_tuf::validation::{validate_update, StoredRepo};
use notary_tuf::{PrivateKey, SignedFile};
use peakmem_alloc::{PeakMemAlloc, PeakMemAllocTrait, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &PeakMemAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

#[derive(Parser, Debug)]
#[command(name = "notary-bench-upload")]
struct Args {
    /// Targets in the repository (and in the upload).
    #[arg(long, default_value_t = 20_000)]
    targets: usize,
    /// Measured rounds.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
}

fn p50(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let gun = "bench.example.com/upload";
    let snapshot_key = PrivateKey::generate("ecdsa")?;
    let timestamp_key = PrivateKey::generate("ecdsa")?;
    let repo = RustRepo::new(gun, snapshot_key.public_key(), timestamp_key.public_key());
    let names: Vec<String> = (0..a.targets).map(|i| format!("tag{i}")).collect();
    let contents: Vec<Vec<u8>> = (0..a.targets)
        .map(|i| format!("content {i}").into_bytes())
        .collect();
    let list = |changed: &'static [u8]| -> Vec<(&str, &[u8])> {
        let mut l: Vec<(&str, &[u8])> = names
            .iter()
            .map(String::as_str)
            .zip(contents.iter().map(Vec::as_slice))
            .collect();
        l[0].1 = changed;
        l
    };
    let root = repo.root_file(1);
    let targets = repo.targets_file(1, &list(b"first"));
    let snapshot = sign(
        &snapshot_body(
            &[(md::ROOT, &root), (md::TARGETS, &targets)],
            1,
            &far_future(),
        ),
        &[Signer::plain(&snapshot_key)],
    )?;
    let stored = StoredRepo {
        files: BTreeMap::from([
            (md::ROOT.to_string(), root.into()),
            (md::SNAPSHOT.to_string(), snapshot.into()),
        ]),
    };
    let upload = bytes::Bytes::from(repo.targets_file(2, &list(b"second")));
    let now = chrono::Utc::now();

    let (mut parse, mut validate) = (Vec::new(), Vec::new());
    let mut peak = 0usize;
    for _ in 0..a.rounds + 1 {
        GLOBAL.reset_peak_memory();
        let t = Instant::now();
        let file = SignedFile::parse_bytes(upload.clone())?;
        let parsed = t.elapsed();
        let uploads = BTreeMap::from([(md::TARGETS.to_string(), file)]);
        let t = Instant::now();
        let plan = validate_update(gun, &uploads, &stored, now)?;
        let validated = t.elapsed();
        drop((plan, uploads));
        peak = peak.max(GLOBAL.get_peak_memory());
        parse.push(parsed);
        validate.push(validated);
    }
    // The first round warms the allocator up; it is not timed.
    parse.remove(0);
    validate.remove(0);
    let mb = upload.len() as f64 / 1e6;
    let (p, v) = (p50(parse), p50(validate));
    println!(
        "upload: {} targets, {:.2} MB; rounds: {}",
        a.targets, mb, a.rounds
    );
    println!("step        p50 ms   MB/s");
    println!("parse     {p:8.2} {:6.0}", mb / p * 1e3);
    println!("validate  {v:8.2} {:6.0}", mb / v * 1e3);
    println!("both      {:8.2} {:6.0}", p + v, mb / (p + v) * 1e3);
    println!(
        "peak heap during parse + validate: {:.1} KB, {:.3} bytes per upload byte",
        peak as f64 / 1e3,
        peak as f64 / upload.len() as f64
    );
    Ok(())
}
