//! `SqlStore` on an in-memory SQLite database: what each operation stores and answers.

use std::time::Duration;

use notary_common::db::{Db, PoolConfig};
use notary_tuf::validation::Update;

use super::{within, Changefeed, SqlStore, StoreError};
use crate::audit::{Action, Actor, Record};
use crate::gun::gun;
use crate::role::Role;

async fn store() -> SqlStore {
    let db = Db::connect("sqlite::memory:", &PoolConfig::default())
        .await
        .expect("in-memory SQLite");
    SqlStore::new(db).await.expect("migrated")
}

fn update(role: &str, version: i64, data: &str) -> Update {
    Update {
        role: role.into(),
        version,
        data: data.as_bytes().to_vec().into(),
    }
}

#[tokio::test]
async fn a_publish_is_stored_whole_and_a_replay_is_refused() {
    let s = store().await;
    let g = gun("example.com/unit/publish");
    let first = [
        update("root", 1, "r1"),
        update("snapshot", 1, "s1"),
        update("timestamp", 1, "t1"),
    ];
    s.update_many(&g, &first, super::now(), None, None)
        .await
        .unwrap();
    assert_eq!(
        &s.latest(&g, &Role::ROOT).await.unwrap().unwrap().data[..],
        b"r1"
    );
    // The same versions again: nothing stored, the version error.
    let again = [update("snapshot", 1, "s1b"), update("timestamp", 1, "t1b")];
    assert!(matches!(
        s.update_many(&g, &again, super::now(), None, None).await,
        Err(StoreError::OldVersion)
    ));
    assert_eq!(
        &s.latest(&g, &Role::TIMESTAMP).await.unwrap().unwrap().data[..],
        b"t1"
    );
    // One changefeed row per stored timestamp, naming it.
    let feed = s.changes_after(0, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].gun, *g);
    assert!(!feed[0].deletion);
    assert_eq!(s.last_change_id().await.unwrap(), feed[0].id);
    // The chain loads in one call; a version, by its number.
    let chain = s.latest_chain(&g, Some(&Role::ROOT)).await.unwrap();
    assert_eq!(&chain.timestamp.unwrap().data[..], b"t1");
    assert_eq!(&chain.snapshot.unwrap().data[..], b"s1");
    assert_eq!(&chain.also.unwrap().data[..], b"r1");
    assert!(s.by_version(&g, &Role::ROOT, 2).await.unwrap().is_none());
}

#[tokio::test]
async fn a_deletion_removes_every_file_and_says_so_in_the_changefeed() {
    let s = store().await;
    let g = gun("example.com/unit/delete");
    let actor = Actor::admin(Some("unit test".into()));
    let record = Record {
        action: Action::Delete,
        gun: &g,
        roles: String::new(),
        actor: &actor,
    };
    assert!(
        !s.delete(&g, None, Some(&record)).await.unwrap(),
        "nothing yet"
    );
    s.update_many(
        &g,
        &[update("timestamp", 1, "t1")],
        super::now(),
        None,
        None,
    )
    .await
    .unwrap();
    assert!(s.delete(&g, None, Some(&record)).await.unwrap());
    assert!(s.latest(&g, &Role::TIMESTAMP).await.unwrap().is_none());
    assert!(s.guns().await.unwrap().is_empty());
    let feed = s.changes_after(0, 10).await.unwrap();
    assert!(feed.last().unwrap().deletion);
    // The audit record went with the deletion, and only with the one that removed something.
    let audit = s.audit_entries(Some(&g), None, 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].reason.as_deref(), Some("unit test"));
}

#[tokio::test]
async fn the_first_key_binding_stays() {
    let s = store().await;
    let (a, b) = (gun("example.com/unit/a"), gun("example.com/unit/b"));
    s.bind_key("k1", &a, &Role::TIMESTAMP).await.unwrap();
    s.bind_key("k1", &b, &Role::SNAPSHOT).await.unwrap();
    assert_eq!(
        s.key_binding("k1").await.unwrap(),
        Some(super::KeyBinding {
            gun: a.to_string(),
            role: "timestamp".to_string()
        })
    );
    assert_eq!(s.key_binding("k2").await.unwrap(), None);
}

#[tokio::test]
async fn a_call_without_an_answer_is_unavailable_within_its_limit() {
    // Invariant 1: the limit, not the network, decides when a call gives up.
    let never = std::future::pending::<Result<(), StoreError>>();
    let started = std::time::Instant::now();
    let e = within(Duration::from_millis(50), "latest", never)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&e, StoreError::Unavailable(m) if m.starts_with("latest: no answer")),
        "{e}"
    );
}
