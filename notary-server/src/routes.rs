//! The Go server's routes as one enum ([`Route`]), its TUF paths (gorilla/mux patterns)
//! matched by hand.
//!
//! Each function accepts exactly the paths of one pattern and returns the same captures:
//!
//! | function | pattern |
//! |---|---|
//! | `update` | `^/v2/(?P<gun>[^*]+)/_trust/tuf/$` |
//! | `by_hash` | `^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<role>ROLE)\.(?P<checksum>[a-fA-F0-9]{64}\|{96}\|{128})\.json$` |
//! | `by_version` | `^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<version>[1-9]*[0-9]+)\.(?P<role>ROLE)\.json$` |
//! | `current` | `^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<role>ROLE)\.json$` |
//! | `key` | `^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<role>snapshot\|timestamp)\.key$` |
//! | `changefeed` | `^/v2/(?P<gun>[^*]+)/_trust/changefeed$` |
//!
//! with `ROLE` = `root|targets(?:/[^/\s]+)*|snapshot|timestamp`. The greedy `gun` takes the
//! longest prefix that lets the rest match, and a delegation role the longest that does. These
//! regular expressions were the router before; capturing with them took a seventh of the
//! server's CPU on a cached read. The unit tests check these functions against them.
//!
//! Matching is linear in the path's length: each candidate GUN end is judged in constant time
//! (whether the rest may hold a delegation role is known from one scan of the path), so a path
//! of many `/_trust/tuf/` segments costs no more than its bytes
//! (`hostile_paths_route_as_the_patterns`; before, each candidate re-read the rest: quadratic,
//! 0.3 s of CPU for a 60 KB path; `scripts/bench.sh` prints the cost of the longest accepted one).

const TUF: &str = "/_trust/tuf/";

/// A request's route: every endpoint of the Go server, plus `/metrics`. Parsed once
/// ([`Route::parse`]) and matched once (`http.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route<'p> {
    /// `GET /v2/`: the catalog check Docker clients make first.
    Ping,
    /// `GET /_notary_server/health`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `GET /v2/_trust/changefeed` (`gun`: `None`) or `GET /v2/<gun>/_trust/changefeed`.
    Changefeed {
        gun: Option<&'p str>,
    },
    /// `POST /v2/<gun>/_trust/tuf/`: a publish.
    Update {
        gun: &'p str,
    },
    /// `DELETE /v2/<gun>/_trust/tuf/`.
    Delete {
        gun: &'p str,
    },
    ByHash {
        gun: &'p str,
        role: &'p str,
        checksum: &'p str,
    },
    ByVersion {
        gun: &'p str,
        version: &'p str,
        role: &'p str,
    },
    Current {
        gun: &'p str,
        role: &'p str,
    },
    /// `GET …/<snapshot|timestamp>.key`.
    GetKey {
        gun: &'p str,
        role: &'p str,
    },
    /// `POST …/<snapshot|timestamp>.key`.
    RotateKey {
        gun: &'p str,
        role: &'p str,
    },
    /// Anything else: 404 (after the catalog check, as in Go).
    NotFound,
}

impl<'p> Route<'p> {
    /// The route of `method` on the (decoded, clean) `path`, in the Go router's precedence.
    pub(crate) fn parse(method: &http::Method, path: &'p str) -> Route<'p> {
        use http::Method;
        let get = method == Method::GET;
        let post = method == Method::POST;
        match path {
            "/v2/" if get => return Route::Ping,
            "/_notary_server/health" if get => return Route::Health,
            "/metrics" if get => return Route::Metrics,
            "/v2/_trust/changefeed" if get => return Route::Changefeed { gun: None },
            _ => {}
        }
        if post {
            if let Some(gun) = update(path) {
                return Route::Update { gun };
            }
        }
        if let (true, Some(scan)) = (get, Scan::new(path)) {
            if let Some((gun, role, checksum)) = by_hash_in(scan) {
                return Route::ByHash {
                    gun,
                    role,
                    checksum,
                };
            }
            if let Some((gun, version, role)) = by_version_in(scan) {
                return Route::ByVersion { gun, version, role };
            }
            if let Some((gun, role)) = current_in(scan) {
                return Route::Current { gun, role };
            }
        }
        if let Some((gun, role)) = key(path) {
            if get {
                return Route::GetKey { gun, role };
            }
            if post {
                return Route::RotateKey { gun, role };
            }
        }
        if method == Method::DELETE {
            if let Some(gun) = update(path) {
                return Route::Delete { gun };
            }
        }
        if get {
            if let Some(gun) = changefeed(path) {
                return Route::Changefeed { gun: Some(gun) };
            }
        }
        Route::NotFound
    }

    /// The Go server's operation name, for the request metrics (`None`: not counted).
    pub(crate) fn operation(&self) -> Option<&'static str> {
        Some(match self {
            Route::Ping | Route::Health | Route::Metrics | Route::NotFound => return None,
            Route::Changefeed { .. } => "Changefeed",
            Route::Update { .. } => "UpdateTUF",
            Route::Delete { .. } => "DeleteTUF",
            Route::ByHash { .. } => "GetRoleByHash",
            Route::ByVersion { .. } => "GetRoleByVersion",
            Route::Current { .. } => "GetRole",
            Route::GetKey { .. } => "GetKey",
            Route::RotateKey { .. } => "RotateKey",
        })
    }
}

/// One scan of a path under `/v2/`, shared by the routes tried on it (`Route::parse` tries up to
/// four): where a GUN may end and where the rest stops being clean.
#[derive(Clone, Copy)]
struct Scan<'p> {
    tail: &'p str,
    /// A GUN has no '*': only separators before the first one can end it.
    limit: usize,
    /// The last position a clean rest must start after: whitespace, or the first of two slashes.
    dirty: Option<usize>,
}

impl<'p> Scan<'p> {
    fn new(path: &'p str) -> Option<Scan<'p>> {
        let tail = path.strip_prefix("/v2/")?;
        let limit = tail.find('*').unwrap_or(tail.len());
        let mut dirty: Option<usize> = None;
        let mut prev_slash = false;
        for (i, c) in tail.char_indices() {
            if c.is_whitespace() {
                dirty = Some(i);
            } else if c == '/' && prev_slash {
                dirty = Some(i - 1);
            }
            prev_slash = c == '/';
        }
        Some(Scan { tail, limit, dirty })
    }

    /// The GUN and the rest of the path, for the longest GUN whose rest `rest_ok` accepts.
    /// `rest_ok` also gets whether the rest is *clean* (no whitespace, no empty segment), which
    /// is all a delegation role needs beyond its prefix: known per candidate from the scan.
    fn split<T>(
        self,
        sep: &str,
        rest_ok: impl Fn(&'p str, bool) -> Option<T>,
    ) -> Option<(&'p str, T)> {
        let (tail, bytes) = (self.tail, self.tail.as_bytes());
        // Every occurrence of `sep`, the last first; they may overlap
        // ("/_trust/tuf/_trust/tuf/"). `sep` starts with '/', so each is at a char boundary.
        let last = tail.len().checked_sub(sep.len())?;
        for at in (1..=last.min(self.limit)).rev() {
            if bytes[at] != b'/' || !bytes[at..].starts_with(sep.as_bytes()) {
                continue;
            }
            let start = at + sep.len();
            if let Some(t) = rest_ok(&tail[start..], self.dirty.is_none_or(|d| d < start)) {
                return Some((&tail[..at], t));
            }
        }
        None
    }
}

/// `split` on a path not scanned yet.
fn split_gun<'p, T>(
    path: &'p str,
    sep: &str,
    rest_ok: impl Fn(&'p str, bool) -> Option<T>,
) -> Option<(&'p str, T)> {
    Scan::new(path)?.split(sep, rest_ok)
}

/// `ROLE`, the whole of `s`, which is part of a clean rest or not (see `split_gun`).
fn is_role(s: &str, clean: bool) -> bool {
    match s {
        "root" | "snapshot" | "timestamp" | "targets" => true,
        _ => clean && s.len() > "targets/".len() && s.starts_with("targets/") && !s.ends_with('/'),
    }
}

/// `POST`/`DELETE …/_trust/tuf/`: the GUN.
pub(crate) fn update(path: &str) -> Option<&str> {
    split_gun(path, TUF, |rest, _| rest.is_empty().then_some(())).map(|(gun, ())| gun)
}

/// `…/_trust/tuf/<role>.<checksum>.json`: (GUN, role, checksum).
#[cfg(test)]
pub(crate) fn by_hash(path: &str) -> Option<(&str, &str, &str)> {
    by_hash_in(Scan::new(path)?)
}

fn by_hash_in(scan: Scan<'_>) -> Option<(&str, &str, &str)> {
    scan.split(TUF, |rest, clean| {
        let stem = rest.strip_suffix(".json")?;
        // The longest role first: the shortest checksum that leaves one.
        [64, 96, 128].into_iter().find_map(|n| {
            let cut = stem.len().checked_sub(n + 1)?;
            if !stem.is_char_boundary(cut) {
                return None;
            }
            let (role, dot_sum) = stem.split_at(cut);
            let sum = dot_sum.strip_prefix('.')?;
            (sum.bytes().all(|b| b.is_ascii_hexdigit()) && is_role(role, clean))
                .then_some((role, sum))
        })
    })
    .map(|(gun, (role, sum))| (gun, role, sum))
}

/// `…/_trust/tuf/<version>.<role>.json`: (GUN, version digits, role).
#[cfg(test)]
pub(crate) fn by_version(path: &str) -> Option<(&str, &str, &str)> {
    by_version_in(Scan::new(path)?)
}

fn by_version_in(scan: Scan<'_>) -> Option<(&str, &str, &str)> {
    scan.split(TUF, |rest, clean| {
        // The digits end at the first non-digit, which is before the next '/': linear overall.
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let role = rest
            .strip_suffix(".json")?
            .get(digits..)?
            .strip_prefix('.')?;
        (digits > 0 && is_role(role, clean)).then_some((&rest[..digits], role))
    })
    .map(|(gun, (version, role))| (gun, version, role))
}

/// `…/_trust/tuf/<role>.json`: (GUN, role).
#[cfg(test)]
pub(crate) fn current(path: &str) -> Option<(&str, &str)> {
    current_in(Scan::new(path)?)
}

fn current_in(scan: Scan<'_>) -> Option<(&str, &str)> {
    scan.split(TUF, |rest, clean| {
        rest.strip_suffix(".json").filter(|r| is_role(r, clean))
    })
}

/// `…/_trust/tuf/<snapshot|timestamp>.key`: (GUN, role).
pub(crate) fn key(path: &str) -> Option<(&str, &str)> {
    split_gun(path, TUF, |rest, _| {
        rest.strip_suffix(".key")
            .filter(|r| matches!(*r, "snapshot" | "timestamp"))
    })
}

/// `…/_trust/changefeed`: the GUN.
pub(crate) fn changefeed(path: &str) -> Option<&str> {
    split_gun(path, "/_trust/changefeed", |rest, _| {
        rest.is_empty().then_some(())
    })
    .map(|(gun, ())| gun)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex::Regex;

    const ROLE: &str = r"root|targets(?:/[^/\s]+)*|snapshot|timestamp";

    struct Oracle {
        update: Regex,
        by_hash: Regex,
        by_version: Regex,
        current: Regex,
        key: Regex,
        changefeed: Regex,
    }

    /// The gorilla/mux patterns of the Go server, as regular expressions.
    fn oracle() -> &'static Oracle {
        static O: std::sync::LazyLock<Oracle> = std::sync::LazyLock::new(|| {
            Oracle {
            update: Regex::new(r"^/v2/(?P<gun>[^*]+)/_trust/tuf/$").unwrap(),
            by_hash: Regex::new(&format!(
                r"^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<role>{ROLE})\.(?P<checksum>[a-fA-F0-9]{{64}}|[a-fA-F0-9]{{96}}|[a-fA-F0-9]{{128}})\.json$"
            ))
            .unwrap(),
            by_version: Regex::new(&format!(r"^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<version>[1-9]*[0-9]+)\.(?P<role>{ROLE})\.json$")).unwrap(),
            current: Regex::new(&format!(r"^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<role>{ROLE})\.json$")).unwrap(),
            key: Regex::new(r"^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<role>snapshot|timestamp)\.key$").unwrap(),
            changefeed: Regex::new(r"^/v2/(?P<gun>[^*]+)/_trust/changefeed$").unwrap(),
        }
        });
        &O
    }

    fn caps<'p>(re: &Regex, path: &'p str, names: &[&str]) -> Option<Vec<&'p str>> {
        let c = re.captures(path)?;
        Some(names.iter().map(|n| c.name(n).unwrap().as_str()).collect())
    }

    fn check(o: &Oracle, p: &str) {
        assert_eq!(
            update(p).map(|g| vec![g]),
            caps(&o.update, p, &["gun"]),
            "update {p:?}"
        );
        assert_eq!(
            by_hash(p).map(|(g, r, c)| vec![g, r, c]),
            caps(&o.by_hash, p, &["gun", "role", "checksum"]),
            "by_hash {p:?}"
        );
        assert_eq!(
            by_version(p).map(|(g, v, r)| vec![g, v, r]),
            caps(&o.by_version, p, &["gun", "version", "role"]),
            "by_version {p:?}"
        );
        assert_eq!(
            current(p).map(|(g, r)| vec![g, r]),
            caps(&o.current, p, &["gun", "role"]),
            "current {p:?}"
        );
        assert_eq!(
            key(p).map(|(g, r)| vec![g, r]),
            caps(&o.key, p, &["gun", "role"]),
            "key {p:?}"
        );
        assert_eq!(
            changefeed(p).map(|g| vec![g]),
            caps(&o.changefeed, p, &["gun"]),
            "changefeed {p:?}"
        );
    }

    #[test]
    fn captures() {
        assert_eq!(
            current("/v2/docker.io/library/alpine/_trust/tuf/targets/releases.json"),
            Some(("docker.io/library/alpine", "targets/releases"))
        );
        let h = "a".repeat(64);
        assert_eq!(
            by_hash(&format!("/v2/x/y/_trust/tuf/snapshot.{h}.json")),
            Some(("x/y", "snapshot", h.as_str()))
        );
        assert_eq!(
            by_version("/v2/x/_trust/tuf/3.root.json"),
            Some(("x", "3", "root"))
        );
        assert_eq!(current("/v2/x/_trust/tuf/Targets.json"), None);
        assert_eq!(current("/v2/a*b/_trust/tuf/root.json"), None);
        assert_eq!(key("/v2/x/_trust/tuf/root.key"), None);
        assert_eq!(update("/v2/x/_trust/tuf"), None);
        assert_eq!(update("/v2/a/b/_trust/tuf/"), Some("a/b"));
        assert_eq!(changefeed("/v2/a/_trust/changefeed"), Some("a"));
    }

    /// Paths made of many `/_trust/tuf/` segments (every one a candidate GUN end) whose last
    /// segment is or is not a role: the same answers as the patterns.
    #[test]
    fn hostile_paths_route_as_the_patterns() {
        let o = oracle();
        let body = "targets/_trust/tuf/".repeat(200);
        for last in [
            "",
            " ",
            "x.json",
            "targets/a.json",
            "7.targets/a.json",
            "targets//a.json",
            &format!("{}.json", "f".repeat(64)),
        ] {
            for p in [
                format!("/v2/g/_trust/tuf/{body}{last}"),
                format!("/v2/g/_trust/tuf/{body}"),
                format!("/v2/g/_trust/tuf/targets {body}{last}"),
            ] {
                check(o, &p);
            }
        }
    }

    #[test]
    fn known_paths_route_as_gorilla_does() {
        let o = oracle();
        let h64 = "a".repeat(64);
        let h96 = "B".repeat(96);
        let h128 = "0".repeat(128);
        for p in [
            "/v2/docker.io/library/alpine/_trust/tuf/targets/releases.json".to_string(),
            format!("/v2/x/y/_trust/tuf/snapshot.{h64}.json"),
            format!("/v2/x/_trust/tuf/targets/a.b.{h96}.json"),
            format!("/v2/x/_trust/tuf/targets/a.{h64}.{h128}.json"),
            format!("/v2/x/_trust/tuf/root.{}.json", "c".repeat(65)),
            "/v2/x/_trust/tuf/3.root.json".into(),
            "/v2/x/_trust/tuf/0003.targets/x.y.json.json".into(),
            "/v2/x/_trust/tuf/Targets.json".into(),
            "/v2/a*b/_trust/tuf/root.json".into(),
            "/v2/a/_trust/tuf/b*/_trust/tuf/root.json".into(),
            "/v2/a/_trust/tuf/b/_trust/tuf/root.json".into(),
            "/v2/a/_trust/tuf/targets/_trust/tuf/root.json".into(),
            "/v2/x/_trust/tuf/root.key".into(),
            "/v2/x/_trust/tuf/timestamp.key".into(),
            "/v2/x/_trust/tuf".into(),
            "/v2/x/_trust/tuf/".into(),
            "/v2//_trust/tuf/".into(),
            "/v2/_trust/tuf/".into(),
            "/v2/x/_trust/changefeed".into(),
            "/v2/x/_trust/tuf/_trust/changefeed".into(),
            "/v2/a/_trust/tuf/_trust/tuf/".into(),
            "/v2/a/_trust/tuf/_trust/tuf/root.json".into(),
            "/v2/a*/_trust/tuf/_trust/tuf/root.json".into(),
            "/v2/x/_trust/tuf/targets/ a.json".into(),
            "/v2/x/_trust/tuf/targets//a.json".into(),
            "/v2/é/_trust/tuf/targets/ü\u{a0}.json".into(),
        ] {
            check(o, &p);
        }
    }

    fn hex() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just(63usize), Just(64), Just(65), Just(96), Just(128)],
            "[a-fA-F0-9]",
        )
            .prop_map(|(n, c)| c.repeat(n))
    }

    /// Paths shaped like the routes, with the pieces that matter to them varied.
    fn shaped() -> impl Strategy<Value = String> {
        let gun_piece = prop_oneof![
            8 => "[a-z]{1,3}",
            1 => Just("/".to_string()),
            1 => Just("*".to_string()),
            1 => Just("/_trust/tuf/".to_string()),
            1 => Just("_trust".to_string()),
            1 => Just(" ".to_string()),
            1 => Just("é".to_string()),
        ];
        let role = prop_oneof![
            Just("root"),
            Just("targets"),
            Just("snapshot"),
            Just("timestamp"),
            Just("targets/a"),
            Just("targets/a.b"),
            Just("targets/a/b.json"),
            Just("targets/"),
            Just("targets//a"),
            Just("targets/ a"),
            Just("targets/a\u{2003}"),
            Just("Targets"),
            Just("rootx"),
            Just(""),
        ];
        let version = prop_oneof![4 => Just(String::new()), 3 => "[0-9]{1,3}\\.", 1 => Just("x.".to_string()), 1 => Just(".".to_string())];
        let sum = prop_oneof![
            3 => Just(String::new()),
            3 => hex().prop_map(|h| format!(".{h}")),
            1 => hex().prop_map(|h| format!(".{h}.{h}"))
        ];
        let end = prop_oneof![6 => Just(".json"), 2 => Just(".key"), 1 => Just(""), 1 => Just(".jso"), 1 => Just(".json.json")];
        let sep = prop_oneof![6 => Just("/_trust/tuf/"), 1 => Just("/_trust/changefeed"), 1 => Just("/_trust/tuf")];
        (
            prop::collection::vec(gun_piece, 1..4),
            sep,
            version,
            role,
            sum,
            end,
        )
            .prop_map(|(gun, sep, v, r, s, e)| format!("/v2/{}{sep}{v}{r}{s}{e}", gun.concat()))
    }

    /// Paths made of the pieces that matter to these patterns, in any order.
    fn soup() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/v2/".to_string()),
            Just("/_trust/tuf/".to_string()),
            Just("/_trust/changefeed".to_string()),
            Just("root".to_string()),
            Just("targets".to_string()),
            Just("snapshot".to_string()),
            Just("timestamp".to_string()),
            Just("/".to_string()),
            Just(".".to_string()),
            Just("json".to_string()),
            Just(".json".to_string()),
            Just(".key".to_string()),
            Just("*".to_string()),
            Just(" ".to_string()),
            Just("\u{2003}".to_string()),
            Just("é".to_string()),
            "[0-9]{1,3}",
            "[a-z]{1,4}",
            hex(),
        ];
        (prop::collection::vec(piece, 0..10), any::<bool>()).prop_map(|(parts, prefix)| {
            let body = parts.concat();
            if prefix {
                format!("/v2/{body}")
            } else {
                body
            }
        })
    }

    fn path() -> impl Strategy<Value = String> {
        prop_oneof![3 => shaped(), 1 => soup()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn hand_routes_agree_with_the_patterns(p in path()) {
            check(oracle(), &p);
        }
    }
}
