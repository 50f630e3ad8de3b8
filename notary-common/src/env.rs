//! Configuration overrides from the environment, as viper gives the Go programs: every key of
//! the JSON config file (`storage.db_url`) may be overridden by `<PREFIX><KEY>`, upper-cased
//! with dots as underscores (`NOTARY_SERVER_STORAGE_DB_URL`). The keys are derived from the
//! config types ([`keys_of`]), so a new key gets its variable with it.

use serde::Serialize;
use serde_json::Value;

/// Every leaf key of `T::default()` serialised, dotted.
pub fn keys_of<T: Serialize + Default>() -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    // A config type with a key that is not a string cannot be a JSON object: a bug, caught by
    // each binary's `every_config_key_has_an_environment_variable`.
    let v = serde_json::to_value(T::default()).unwrap_or(Value::Null);
    walk("", &v, &mut out);
    out
}

/// The variable that overrides `key`.
pub fn variable(prefix: &str, key: &str) -> String {
    format!("{prefix}{}", key.to_uppercase().replace('.', "_"))
}

/// Apply the overrides of `keys` to a parsed JSON config. Numbers, booleans and lists are read
/// as JSON (`true`, `7`, `["a:1","b:2"]`) unless `is_string(last part of the key)`; anything
/// else as a string. Returns the variables applied.
pub fn apply(
    v: &mut Value,
    prefix: &str,
    keys: &[String],
    is_string: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut applied = Vec::new();
    for key in keys {
        let Ok(val) = std::env::var(variable(prefix, key)) else {
            continue;
        };
        let parts: Vec<&str> = key.split('.').collect();
        let mut cur = &mut *v;
        for p in &parts[..parts.len() - 1] {
            if !cur.get(*p).map(Value::is_object).unwrap_or(false) {
                cur[*p] = Value::Object(Default::default());
            }
            cur = match cur.get_mut(*p) {
                Some(c) => c,
                None => return applied,
            };
        }
        let last = parts[parts.len() - 1];
        cur[last] = match serde_json::from_str::<Value>(&val) {
            Ok(j @ (Value::Number(_) | Value::Bool(_) | Value::Array(_))) if !is_string(last) => j,
            _ => Value::String(val),
        };
        applied.push(variable(prefix, key));
    }
    applied
}

/// Dotted keys of the config `v` that are none of `known` (a known key's object value, such
/// as `caching.max_age`, is walked into; anything below an unknown key is reported once).
pub fn unknown_keys(v: &Value, known: &[String]) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, known: &[String], out: &mut Vec<String>) {
        let Value::Object(m) = v else { return };
        for (k, v) in m {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let below = format!("{key}.");
            if known.contains(&key) {
                continue;
            }
            if known.iter().any(|n| n.starts_with(&below)) {
                walk(&key, v, known, out);
            } else {
                out.push(key);
            }
        }
    }
    let mut out = Vec::new();
    walk("", v, known, &mut out);
    out
}

/// Variables named `<prefix>…` in the environment that override none of `keys` and are none of
/// `others` (a misspelt `NOTARY_SERVER_SERVER_READONLY`).
pub fn unknown_variables(prefix: &str, keys: &[String], others: &[&str]) -> Vec<String> {
    let known: Vec<String> = keys.iter().map(|k| variable(prefix, k)).collect();
    let mut out: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with(prefix) && !known.contains(k) && !others.contains(&k.as_str()))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Default)]
    struct Inner {
        port: Option<u16>,
        on: bool,
    }
    #[derive(Serialize, Default)]
    struct Cfg {
        name: String,
        inner: Inner,
    }

    #[test]
    fn unknown_keys_are_named() {
        let known = keys_of::<Cfg>();
        let v = serde_json::json!({"name": "x", "nmae": 1, "inner": {"on": true, "prot": 1}, "extra": {"a": {"b": 1}}});
        assert_eq!(unknown_keys(&v, &known), ["extra", "inner.prot", "nmae"]);
        std::env::set_var("NOTARYCOMMON_UNKNOWNTEST_INNER_PROT", "1");
        std::env::set_var("NOTARYCOMMON_UNKNOWNTEST_NAME", "1");
        std::env::set_var("NOTARYCOMMON_UNKNOWNTEST_SECRET", "1");
        assert_eq!(
            unknown_variables(
                "NOTARYCOMMON_UNKNOWNTEST_",
                &known,
                &["NOTARYCOMMON_UNKNOWNTEST_SECRET"]
            ),
            ["NOTARYCOMMON_UNKNOWNTEST_INNER_PROT"]
        );
    }

    #[test]
    fn keys_are_derived_and_values_typed() {
        assert_eq!(keys_of::<Cfg>(), ["inner.on", "inner.port", "name"]);
        let keys = keys_of::<Cfg>();
        let mut v = serde_json::json!({"name": "x"});
        for (k, val) in [
            ("NOTARYCOMMON_ENVTEST_NAME", "7"),
            ("NOTARYCOMMON_ENVTEST_INNER_PORT", "7"),
            ("NOTARYCOMMON_ENVTEST_INNER_ON", "true"),
        ] {
            std::env::set_var(k, val);
        }
        apply(&mut v, "NOTARYCOMMON_ENVTEST_", &keys, |k| k == "name");
        assert_eq!(
            v,
            serde_json::json!({"name": "7", "inner": {"port": 7, "on": true}})
        );
    }
}
