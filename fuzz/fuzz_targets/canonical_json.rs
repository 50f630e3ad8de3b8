//! Canonical JSON of arbitrary input: never panics; when it succeeds the result is valid JSON
//! that canonicalizes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notary_tuf::cjson;

fuzz_target!(|data: &[u8]| {
    // What the fast path takes as canonical must be exactly what canonicalising writes.
    if cjson::is_canonical(data) && std::str::from_utf8(data).is_ok() {
        assert_eq!(
            cjson::canonicalize(data).expect("canonical input must parse"),
            data,
            "is_canonical accepted a body canonicalize would rewrite"
        );
    }
    if let Ok(c) = cjson::canonicalize(data) {
        let again = cjson::canonicalize(&c).expect("canonical output must be canonicalizable");
        assert_eq!(again, c, "canonical JSON is not idempotent");
    }
});
