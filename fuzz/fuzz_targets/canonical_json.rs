//! Canonical JSON of arbitrary input: never panics; when it succeeds the result is valid JSON
//! that canonicalizes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notary_tuf::cjson;

fuzz_target!(|data: &[u8]| {
    // What the fast path takes as canonical must be exactly what canonicalising writes.
    if let (Some(scan), true) = (cjson::scan(data), std::str::from_utf8(data).is_ok()) {
        assert_eq!(
            cjson::canonicalize(data).expect("canonical input must parse"),
            data,
            "is_canonical accepted a body canonicalize would rewrite"
        );
        // What the scan hands over is what a parser reads: the top members, key and value.
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(data) {
            assert_eq!(scan.members.len(), m.len());
            for (k, v) in &scan.members {
                let key = std::str::from_utf8(k).expect("a key of valid UTF-8");
                let value: serde_json::Value = serde_json::from_slice(v).expect("a member's value");
                assert_eq!(m.get(key), Some(&value), "member {key}");
            }
        }
    }
    if let Ok(c) = cjson::canonicalize(data) {
        let again = cjson::canonicalize(&c).expect("canonical output must be canonicalizable");
        assert_eq!(again, c, "canonical JSON is not idempotent");
    }
});
