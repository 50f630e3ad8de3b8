//! The architecture's guard rails, checked on the sources (runs anywhere):
//! no import cycle between the modules of any crate of the workspace, no
//! `Result<_, String>` in the library crates, and no client or terminal stack in the
//! library that serves HTTP (the tools that need one are in notary-tools), and no public module
//! of that library that no other crate uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Code of a file without comments and the test module (tests may use anything).
fn code(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module path of a source file: `src/coherence/lease.rs` → ["coherence", "lease"].
fn module_of(src: &Path, p: &Path) -> Vec<String> {
    let rel = p.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts
}

/// The names the crate root re-exports (`pub use keys::{PrivateKey, PublicKey};`), each with
/// the top-level module it comes from: `crate::PublicKey` is an import of `keys`.
fn root_reexports(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(lib) = std::fs::read_to_string(src.join("lib.rs")) else {
        return out;
    };
    let re = regex::Regex::new(r"pub use (?:crate::)?(\w+)::([^;]+);").unwrap();
    for c in re.captures_iter(&lib) {
        let names = c[2].trim().trim_start_matches('{').trim_end_matches('}');
        for n in names.split(',') {
            let n = n.trim().rsplit("::").next().unwrap_or("").trim();
            let n = n.rsplit(" as ").next().unwrap_or(n).trim();
            if !n.is_empty() {
                out.insert(n.to_string(), c[1].to_string());
            }
        }
    }
    out
}

/// Edges between sibling modules: `crate::a` from a top-level module, `super::b` or
/// `crate::parent::b` from a submodule; a name the crate root re-exports counts as its module.
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let reexports = root_reexports(src);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let m = module_of(src, &f);
        if m.is_empty() || m == ["main"] || m.first().is_some_and(|x| x == "bin") {
            continue;
        }
        let c = code(&f);
        let name = m.join("::");
        let parent = m[..m.len() - 1].join("::");
        let mut targets = BTreeSet::new();
        let word = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        for (i, _) in c.match_indices("crate::") {
            let rest = &c[i + "crate::".len()..];
            let first = word(rest);
            let first = reexports.get(&first).cloned().unwrap_or(first);
            if m.len() == 1 {
                targets.insert(first);
            } else if first == m[0] {
                let second = word(&rest[first.len() + 2.min(rest.len() - first.len())..]);
                targets.insert(format!("{parent}::{second}"));
            } else {
                targets.insert(first);
            }
        }
        for (i, _) in c.match_indices("super::") {
            let sib = word(&c[i + "super::".len()..]);
            if !sib.is_empty() && m.len() > 1 {
                targets.insert(format!("{parent}::{sib}"));
            }
        }
        // A module and its parent's re-exports are one module for this check.
        targets.retain(|t| !t.is_empty() && *t != name && *t != parent && *t != m[0]);
        graph.entry(name).or_default().extend(targets);
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if !done.insert(n.to_string()) {
            return None;
        }
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const CRATES: [&str; 6] = [
    "notary-tuf",
    "notary-common",
    "notary-signer",
    "notary-server",
    "notary-tools",
    "notary-bench",
];

#[test]
fn no_import_cycle_between_modules() {
    for krate in CRATES {
        let g = edges(&workspace().join(krate).join("src"));
        assert!(g.len() >= 3, "{krate}: no modules found");
        if let Some(c) = find_cycle(&g) {
            panic!("{krate}: import cycle {}", c.join(" → "));
        }
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.remove("c");
    assert!(find_cycle(&g).is_none());
    // And the parser sees the edges of a submodule, and names re-exported by the crate root.
    let tuf = edges(&workspace().join("notary-tuf/src"));
    assert!(root_reexports(&workspace().join("notary-tuf/src"))["PublicKey"] == "keys");
    assert!(
        tuf["validation"].contains("error"),
        "crate::Error is error's"
    );
    let server = edges(&workspace().join("notary-server/src"));
    assert!(server["coherence::lease"].contains("coherence::follower"));
    assert!(server["service"].contains("coherence"));
}

#[test]
fn library_crates_return_no_string_errors() {
    let re = regex::Regex::new(r"Result<[^;{]*,\s*String>").unwrap();
    for krate in CRATES {
        let mut files = Vec::new();
        rust_files(&workspace().join(krate).join("src"), &mut files);
        for f in files {
            if f.ends_with("main.rs") || f.components().any(|c| c.as_os_str() == "bin") {
                continue;
            }
            let c = code(&f);
            assert!(!re.is_match(&c), "{}: Result<_, String>", f.display());
        }
    }
}

/// The dependencies (not dev-dependencies) a crate's Cargo.toml names.
fn dependencies(krate: &str) -> BTreeSet<String> {
    let toml = std::fs::read_to_string(workspace().join(krate).join("Cargo.toml")).unwrap();
    let mut out = BTreeSet::new();
    let mut in_deps = false;
    for line in toml.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                out.insert(name.trim().to_string());
            }
        }
    }
    out
}

#[test]
fn the_server_library_carries_no_tools() {
    let deps = dependencies("notary-server");
    assert!(
        deps.contains("hyper"),
        "parsed notary-server's dependencies"
    );
    for tool in [
        "reqwest",
        "indicatif",
        "rpassword",
        "clap",
        "anyhow",
        "pkcs5",
    ] {
        assert!(
            !deps.contains(tool),
            "notary-server (the library that serves HTTP) depends on {tool}: that belongs in notary-tools"
        );
    }
    assert!(dependencies("notary-tools").contains("reqwest"));
}

#[test]
fn only_the_http_edge_speaks_http_errors() {
    // The service and everything under it report `ServiceError`/`StoreError`; Go's envelope
    // (`ApiError`) is made from them once, where a request is answered: `http/`,
    // `errors.rs`, `auth.rs`.
    let src = workspace().join("notary-server/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    rust_files(&workspace().join("notary-tools/src"), &mut files);
    for f in files {
        let at_edge = f.starts_with(src.join("http"))
            || f == src.join("errors.rs")
            || f == src.join("auth.rs");
        if !at_edge {
            assert!(
                !code(&f).contains("ApiError"),
                "{}: ApiError outside the HTTP edge",
                f.display()
            );
        }
    }
}

#[test]
fn source_files_stay_readable_in_one_sitting() {
    // About 600 lines of code before a file's test module; split by concern past that.
    const MAX_LINES: usize = 620;
    for krate in CRATES {
        let mut files = Vec::new();
        rust_files(&workspace().join(krate).join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let n = code.lines().count();
            assert!(n <= MAX_LINES, "{}: {n} lines of code", f.display());
        }
    }
}

#[test]
fn the_servers_internals_are_crate_private() {
    // A module of notary-server that no other crate names is an internal: `pub(crate) mod`.
    let lib = std::fs::read_to_string(workspace().join("notary-server/src/lib.rs")).unwrap();
    let mut users = String::new();
    for krate in ["notary-tools", "notary-bench"] {
        let mut files = Vec::new();
        rust_files(&workspace().join(krate), &mut files);
        for f in files {
            users += &std::fs::read_to_string(&f).unwrap();
        }
    }
    let re = regex::Regex::new(r"(?m)^pub mod (\w+);").unwrap();
    let public: Vec<&str> = re
        .captures_iter(&lib)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert!(
        public.contains(&"service"),
        "parsed notary-server's modules"
    );
    for m in public {
        assert!(
            users.contains(&format!("notary_server::{m}")),
            "notary-server's module {m} is pub but no other crate uses it: make it pub(crate)"
        );
    }
}
