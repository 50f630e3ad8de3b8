//! Publish validation with arbitrary uploads next to a real root (made by the Go notary client,
//! fixtures/go-notary-0.7): never panics, and never accepts a targets file the root's targets
//! key did not sign (the fixture's own targets file is the only valid one at version 1).
#![no_main]
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use notary_tuf::metadata::SignedFile;
use notary_tuf::validation::{validate_update, StoredRepo};

const ROOT: &[u8] = include_bytes!("../../fixtures/go-notary-0.7/metadata/1.root.json");
const GUN: &str = include_str!("../../fixtures/go-notary-0.7/gun.txt");

fuzz_target!(|data: &[u8]| {
    let (which, body) = match data.split_first() {
        Some((w, b)) => (*w, b),
        None => return,
    };
    let Ok(upload) = SignedFile::parse(body) else { return };
    let mut uploads = BTreeMap::new();
    // Either a first publish (root + fuzzed targets) or a fuzzed root alone.
    if which & 1 == 0 {
        uploads.insert("root".to_string(), SignedFile::parse(ROOT).expect("fixture root"));
        uploads.insert("targets".to_string(), upload);
    } else {
        uploads.insert("root".to_string(), upload);
    }
    let _ = validate_update(GUN.trim(), &uploads, &StoredRepo::default(), chrono::Utc::now());
});
