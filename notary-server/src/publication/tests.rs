use super::*;

fn file(role: &str, version: i64) -> PublishedFile {
    PublishedFile {
        role: role.into(),
        version,
        sha256: format!("{version:064x}"),
        len: 2,
    }
}

#[test]
fn the_tree_of_a_repository_in_writing_order() {
    let files = [
        file("timestamp", 1),
        file("timestamp", 2),
        file("snapshot", 1),
        file("root", 1),
        file("targets/releases", 3),
    ];
    let w = wanted(&files);
    let names: Vec<&str> = w.iter().map(|w| w.name.as_str()).collect();
    // Files named by checksum or version first (invariant 2) …
    assert_eq!(w.iter().filter(|w| w.kind == Kind::Immutable).count(), 10);
    assert!(w[..10].iter().all(|w| w.kind == Kind::Immutable));
    assert!(names.contains(&"3.targets/releases.json"));
    assert!(names.contains(&format!("timestamp.{:064x}.json", 2).as_str()));
    // … then the current files, snapshot and timestamp last, the newest version of each.
    assert_eq!(
        &names[10..],
        [
            "root.json",
            "targets/releases.json",
            "snapshot.json",
            "timestamp.json"
        ]
    );
    assert_eq!(w.last().unwrap().file.version, 2);
}

#[test]
fn unsafe_names_are_skipped() {
    for gun in ["a/../b", "a//b", "a/_trust/tuf", ".", "a\nb", ""] {
        assert!(!publishable_gun(gun), "{gun:?}");
    }
    assert!(publishable_gun("docker.io/library/alpine"));
    for role in [
        "targets/..",
        "targets/",
        "targets/a//b",
        "targets/\u{7}",
        "other",
        "../root",
    ] {
        assert!(!publishable_role(role), "{role:?}");
    }
    assert!(publishable_role("targets/releases/qa"));
    let files = [file("targets/../../x", 1), file("root", 1)];
    let w = wanted(&files);
    assert!(w.iter().all(|w| w.file.role == "root"));
}
