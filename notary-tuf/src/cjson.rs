//! Go-compatible canonical JSON (docker/go `json.MarshalCanonical`) and the envelope escaping
//! Go applies when it embeds a canonical body in a file (docs/wire-format.md §1–§2).
//!
//! Rules: object keys sorted by raw bytes, no whitespace, strings escape only `"` and `\`
//! (everything else raw; control characters are refused because Go's output would not be
//! valid JSON), numbers are integers (Go decodes generic numbers as float64 first, so we do
//! the same: non-integral floats are refused, large integers are rounded through f64).

use serde_json::Value;

pub use crate::error::CanonicalError;

/// Canonical bytes of a generic JSON value.
pub fn to_canonical(v: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, v)?;
    Ok(out)
}

/// Parse arbitrary JSON bytes and re-encode them canonically, as Go's verifier does before it
/// checks a signature (decode into `map[string]interface{}`, then `MarshalCanonical`).
pub fn canonicalize(raw: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    let v: Value =
        serde_json::from_slice(raw).map_err(|e| CanonicalError::Invalid(e.to_string()))?;
    to_canonical(&v)
}

/// Whether `body` is already exactly what [`canonicalize`] would write for it — as every file a
/// Go client or this server signs is — so that it can be verified and parsed as it stands,
/// without a generic tree (docs/wire-format.md §2). Conservative: `false` means "rewrite it to
/// know", never "not JSON"; keys with escapes, `\u` escapes, numbers of more than 15 digits
/// (not always exact through float64) and nesting deeper than [`MAX_DEPTH`] take the long way.
pub fn is_canonical(body: &[u8]) -> bool {
    scan(body).is_some()
}

/// What one walk of a canonical body learns besides that it is canonical, so that a metadata
/// file is not walked again for it: how many JSON values it holds (for the density limit) and
/// its own members (for the fields every role has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan<'a> {
    /// Every value, object key and element, the body itself included (as serde counts them).
    pub values: usize,
    /// When the body is an object: each member's key (as written: a canonical key has no
    /// escape) and its value's bytes, in order.
    pub members: Vec<(&'a [u8], &'a [u8])>,
}

/// [`is_canonical`], and if it is, what the walk learnt ([`Scan`]).
pub fn scan(body: &[u8]) -> Option<Scan<'_>> {
    let mut s = Scanner {
        b: body,
        pos: 0,
        values: 0,
        members: Vec::new(),
    };
    (s.value(0) && s.pos == body.len()).then_some(Scan {
        values: s.values,
        members: s.members,
    })
}

/// Below serde_json's own nesting limit (128), so that whatever is recognised also parses.
/// TUF metadata nests six deep.
pub const MAX_DEPTH: usize = 100;

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    values: usize,
    members: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Scanner<'a> {
    fn value(&mut self, depth: usize) -> bool {
        let b = self.b;
        let Some(&c) = b.get(self.pos) else {
            return false;
        };
        self.values += 1;
        match c {
            b'{' => {
                if depth >= MAX_DEPTH {
                    return false;
                }
                self.pos += 1;
                if b.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return true;
                }
                let mut previous: Option<&[u8]> = None;
                loop {
                    let start = self.pos;
                    if !canonical_string(b, &mut self.pos) {
                        return false;
                    }
                    self.values += 1;
                    let key = &b[start + 1..self.pos - 1];
                    // Sorted by bytes, no duplicates; a key with an escape is compared the long way.
                    if key.contains(&b'\\') || previous.is_some_and(|p| p >= key) {
                        return false;
                    }
                    previous = Some(key);
                    if b.get(self.pos) != Some(&b':') {
                        return false;
                    }
                    self.pos += 1;
                    let at = self.pos;
                    if !self.value(depth + 1) {
                        return false;
                    }
                    if depth == 0 {
                        self.members.push((key, &b[at..self.pos]));
                    }
                    match b.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return true;
                        }
                        _ => return false,
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return false;
                }
                self.pos += 1;
                if b.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return true;
                }
                loop {
                    if !self.value(depth + 1) {
                        return false;
                    }
                    match b.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return true;
                        }
                        _ => return false,
                    }
                }
            }
            b'"' => canonical_string(b, &mut self.pos),
            b't' => literal(b, &mut self.pos, b"true"),
            b'f' => literal(b, &mut self.pos, b"false"),
            b'n' => literal(b, &mut self.pos, b"null"),
            b'-' | b'0'..=b'9' => {
                let start = self.pos;
                if c == b'-' {
                    self.pos += 1;
                }
                let digits = self.pos;
                while b.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                let n = &b[digits..self.pos];
                // An integer as Go writes it: no leading zero, no "-0", exact through float64.
                !n.is_empty()
                    && n.len() <= 15
                    && (n[0] != b'0' || (n.len() == 1 && digits == start))
                    && !matches!(b.get(self.pos), Some(b'.' | b'e' | b'E'))
            }
            _ => false,
        }
    }
}

fn literal(b: &[u8], pos: &mut usize, word: &[u8]) -> bool {
    if b[*pos..].starts_with(word) {
        *pos += word.len();
        true
    } else {
        false
    }
}

/// A string as [`write_string`] writes it: only `\"` and `\\` escaped, no control character.
/// (UTF-8 validity is the JSON parser's: callers pass bytes it accepted.)
fn canonical_string(b: &[u8], pos: &mut usize) -> bool {
    if b.get(*pos) != Some(&b'"') {
        return false;
    }
    *pos += 1;
    while let Some(&c) = b.get(*pos) {
        *pos += 1;
        match c {
            b'"' => return true,
            b'\\' => match b.get(*pos) {
                Some(b'"' | b'\\') => *pos += 1,
                _ => return false,
            },
            0..=0x1f => return false,
            _ => {}
        }
    }
    false
}

fn write_value(out: &mut Vec<u8>, v: &Value) -> Result<(), CanonicalError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s)?,
        Value::Array(a) => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(m) => {
            // serde_json's Map (without preserve_order) is a BTreeMap<String, _>: sorted by
            // byte order, which is Go's string order.
            out.push(b'{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k)?;
                out.push(b':');
                write_value(out, item)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_number(out: &mut Vec<u8>, n: &serde_json::Number) -> Result<(), CanonicalError> {
    // Go decodes every generic number into float64.
    let f = if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= (1u64 << 53) {
            out.extend_from_slice(i.to_string().as_bytes());
            return Ok(());
        }
        i as f64
    } else if let Some(u) = n.as_u64() {
        u as f64
    } else {
        n.as_f64()
            .ok_or_else(|| CanonicalError::Invalid(n.to_string()))?
    };
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(CanonicalError::NonInteger(n.to_string()));
    }
    // ±2^63: outside int64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&f) {
        return Err(CanonicalError::OutOfRange(n.to_string()));
    }
    out.extend_from_slice((f as i64).to_string().as_bytes());
    Ok(())
}

/// Write a string the way the canonical encoder does: only `"` and `\` are escaped.
pub fn write_string(out: &mut Vec<u8>, s: &str) -> Result<(), CanonicalError> {
    out.push(b'"');
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => return Err(CanonicalError::ControlCharacter),
            _ => out.push(b),
        }
    }
    out.push(b'"');
    Ok(())
}

/// Go's `compact(escape=true)` applied to an embedded body: HTML characters and U+2028/U+2029
/// become `\u` escapes. Valid JSON only has these characters inside strings, so a byte-level
/// pass is exact.
pub fn html_escape(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xE2 if i + 2 < body.len()
                && body[i + 1] == 0x80
                && (body[i + 2] == 0xA8 || body[i + 2] == 0xA9) =>
            {
                out.extend_from_slice(if body[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                continue;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_by_bytes_and_underscore_first_of_lowercase() {
        let v = json!({"version": 1, "_type": "Root", "Z": true, "a": null});
        assert_eq!(
            to_canonical(&v).unwrap(),
            br#"{"Z":true,"_type":"Root","a":null,"version":1}"#
        );
    }

    #[test]
    fn strings_escape_only_quote_and_backslash() {
        let v = json!({"k": "a&b<c>é\"\\/"});
        assert_eq!(
            to_canonical(&v).unwrap(),
            "{\"k\":\"a&b<c>é\\\"\\\\/\"}".as_bytes()
        );
        assert_eq!(
            canonicalize(br#"{"k":"\u00e9\u003c"}"#).unwrap(),
            "{\"k\":\"é<\"}".as_bytes()
        );
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(
            canonicalize(br#"{"k":"a\nb"}"#),
            Err(CanonicalError::ControlCharacter)
        );
    }

    #[test]
    fn numbers_follow_go_float64() {
        assert_eq!(
            canonicalize(b"[1.0,1e2,-0,9007199254740992]").unwrap(),
            b"[1,100,0,9007199254740992]"
        );
        assert!(matches!(
            canonicalize(b"[1.5]"),
            Err(CanonicalError::NonInteger(_))
        ));
        // 2^53+1 is not representable: Go rounds it to 2^53.
        assert_eq!(
            canonicalize(b"[9007199254740993]").unwrap(),
            b"[9007199254740992]"
        );
        assert!(matches!(
            canonicalize(b"[1e300]"),
            Err(CanonicalError::OutOfRange(_))
        ));
    }

    #[test]
    fn whitespace_is_dropped_and_duplicate_keys_keep_last() {
        assert_eq!(
            canonicalize(b" { \"b\" : [ 1 , 2 ] , \"a\":1, \"a\":2 } ").unwrap(),
            br#"{"a":2,"b":[1,2]}"#
        );
    }

    #[test]
    fn canonical_input_is_recognised_exactly() {
        // Canonical as it stands: canonicalize gives the same bytes back.
        let sample = "{\"Z\":true,\"_type\":\"Root\",\"a\":null,\"b\":[1,-2,0,[],{}],\"c\":\"q\\\"\\\\<&>é\"}";
        for ok in [sample.as_bytes(), b"[]", b"123456789012345", b"-1"] {
            assert!(is_canonical(ok), "{}", String::from_utf8_lossy(ok));
            assert_eq!(canonicalize(ok).unwrap(), ok);
        }
        // Not canonical (or not sure): the long way decides.
        for no in [
            &br#"{"b":1,"a":2}"#[..],
            br#"{"a":1,"a":2}"#,
            br#"{"a": 1}"#,
            b" []",
            b"[1.0]",
            b"[1e2]",
            b"[-0]",
            b"[01]",
            b"[1234567890123456]",
            br#"["\u00e9"]"#,
            br#"["a\nb"]"#,
            b"[\"a\x01b\"]",
            br#"{"a\"":1}"#,
            b"[1,]",
            b"[",
            br#""abc"#,
            b"tru",
            b"[1]x",
        ] {
            assert!(!is_canonical(no), "{}", String::from_utf8_lossy(no));
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(!is_canonical(deep.as_bytes()));
    }

    #[test]
    fn a_scan_counts_values_and_keeps_the_top_members() {
        let body = br#"{"_type":"Targets","b":[1,{"c":null}],"expires":"x","version":3}"#;
        let whole = scan(body).unwrap();
        // The body; 4 keys and their 4 values; the array's 2 elements; the inner key and value.
        assert_eq!(whole.values, 13);
        let members: Vec<(&str, &str)> = whole
            .members
            .iter()
            .map(|(k, v)| {
                (
                    std::str::from_utf8(k).unwrap(),
                    std::str::from_utf8(v).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            members,
            [
                ("_type", "\"Targets\""),
                ("b", r#"[1,{"c":null}]"#),
                ("expires", "\"x\""),
                ("version", "3")
            ]
        );
        assert_eq!(scan(b"[1,2]").unwrap().members, []);
        assert_eq!(scan(b"[1,2]").unwrap().values, 3);
        assert!(scan(b"[1, 2]").is_none());
    }

    #[test]
    fn html_escape_matches_go_compact() {
        let body = "{\"k\":\"a&b<c>é\u{2028}\u{2029}\"}".as_bytes();
        assert_eq!(
            html_escape(body),
            "{\"k\":\"a\\u0026b\\u003cc\\u003eé\\u2028\\u2029\"}".as_bytes()
        );
    }
}
