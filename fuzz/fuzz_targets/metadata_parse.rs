//! Metadata parsing of arbitrary input: never panics, whatever role it claims to be.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notary_tuf::metadata::{MetaBody, Root, SignedFile, Targets};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = SignedFile::parse(data) {
        let _ = f.body::<Root>();
        let _ = f.body::<Targets>();
        let _ = f.body::<MetaBody>();
        // The body as written (fast path) or as rewritten: either way the message signatures
        // cover is what canonicalising the generic tree gives.
        if let (Ok(message), Ok(tree)) = (f.canonical_body(), f.signed_value()) {
            assert_eq!(
                notary_tuf::cjson::to_canonical(&tree).ok().as_deref(),
                Some(message)
            );
        }
    }
});
