//! The storage layer's writes on both backends (Postgres: one statement each; SQLite: one
//! transaction): all files of an update or none, one changefeed row naming the new timestamp,
//! concurrent writers of one version get exactly one winner, deletions leave one row.
#![cfg(feature = "system-tests")]

mod common;

use std::sync::Arc;

use common::*;
use notary_common::db::{Db, PoolConfig};
use notary_server::gun::Gun;
use notary_server::role::Role;
use notary_server::storage::{Changefeed, SqlStore, StoreError};
use notary_tuf::validation::Update;
use sha2::Digest;

/// A store on a new SQLite file in `dir`, and one on a new Postgres database.
async fn stores(dir: &tempfile::TempDir) -> Vec<(&'static str, Arc<SqlStore>)> {
    let cfg = PoolConfig::default();
    let sqlite = format!("sqlite:{}", dir.path().join("server.db").display());
    let mut out = Vec::new();
    for (name, url) in [("sqlite", sqlite), ("postgres", create_pg_db().await)] {
        out.push((
            name,
            Arc::new(
                SqlStore::new(Db::connect(&url, &cfg).await.unwrap())
                    .await
                    .unwrap(),
            ),
        ));
    }
    out
}

fn update(role: &str, version: i64, data: &str) -> Update {
    Update {
        role: role.into(),
        version,
        data: data.as_bytes().to_vec().into(),
    }
}

fn sha(data: &str) -> String {
    hex::encode(sha2::Sha256::digest(data.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_all_or_nothing_with_one_changefeed_row() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, store) in stores(&dir).await {
        let gun = &Gun::new("example.com/storage/writes").unwrap();
        let at = notary_server::storage::now();
        let first = [
            update("targets", 1, "t1"),
            update("snapshot", 1, "s1"),
            update("timestamp", 1, "ts1"),
        ];
        store
            .update_many(gun, &first, at, None, None)
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        let feed = store.changes_after(0, 100).await.unwrap();
        assert_eq!(feed.len(), 1, "{backend}: one changefeed row per update");
        assert_eq!(feed[0].gun, **gun);
        assert_eq!(
            feed[0].sha256.as_deref(),
            Some(sha("ts1").as_str()),
            "{backend}: the row names the new timestamp"
        );
        let ts = store.latest(gun, &Role::TIMESTAMP).await.unwrap().unwrap();
        assert_eq!(&ts.data[..], b"ts1");
        assert_eq!(
            ts.modified.and_utc().timestamp_micros(),
            at.and_utc().timestamp_micros(),
            "{backend}: stored at the given time"
        );

        // Targets v2 is new but snapshot v1 is not: nothing is stored, no row is written.
        let stale = [
            update("targets", 2, "t2"),
            update("snapshot", 1, "s1-again"),
            update("timestamp", 2, "ts2"),
        ];
        match store
            .update_many(gun, &stale, notary_server::storage::now(), None, None)
            .await
        {
            Err(StoreError::OldVersion) => {}
            other => panic!("{backend}: a stale snapshot gave {other:?}"),
        }
        assert!(
            store
                .by_version(gun, &Role::TARGETS, 2)
                .await
                .unwrap()
                .is_none(),
            "{backend}: half an update was stored"
        );
        assert!(
            store
                .by_version(gun, &Role::TIMESTAMP, 2)
                .await
                .unwrap()
                .is_none(),
            "{backend}: half an update was stored"
        );
        assert_eq!(
            store.changes_after(0, 100).await.unwrap().len(),
            1,
            "{backend}: a refused update wrote a changefeed row"
        );

        // Eight writers of the same next versions at once: one wins, the rest get OldVersion.
        let mut writers = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            let gun = gun.clone();
            writers.push(tokio::spawn(async move {
                let data = format!("ts2-{w}");
                let u = [
                    update("snapshot", 2, &format!("s2-{w}")),
                    update("timestamp", 2, &data),
                ];
                store
                    .update_many(&gun, &u, notary_server::storage::now(), None, None)
                    .await
                    .map(|()| data)
            }));
        }
        let mut won = Vec::new();
        for w in writers {
            match w.await.unwrap() {
                Ok(data) => won.push(data),
                Err(StoreError::OldVersion) => {}
                Err(e) => panic!("{backend}: a concurrent writer failed with {e}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "{backend}: {} concurrent writers of one version succeeded",
            won.len()
        );
        let feed = store.changes_after(0, 100).await.unwrap();
        assert_eq!(feed.len(), 2, "{backend}: one row per successful update");
        assert_eq!(feed[1].sha256.as_deref(), Some(sha(&won[0]).as_str()));
        assert_eq!(
            &store
                .latest(gun, &Role::TIMESTAMP)
                .await
                .unwrap()
                .unwrap()
                .data[..],
            won[0].as_bytes()
        );

        // Deletion: one row, once.
        assert!(store.delete(gun, None, None).await.unwrap());
        assert!(
            !store.delete(gun, None, None).await.unwrap(),
            "{backend}: nothing left to delete"
        );
        let feed = store.changes_after(0, 100).await.unwrap();
        assert_eq!(feed.len(), 3, "{backend}: one deletion row");
        assert!(feed[2].deletion);
        assert!(store.latest(gun, &Role::TIMESTAMP).await.unwrap().is_none());
    }
}

/// A chain load reads the newest timestamp, snapshot and asked-for role in one statement, dated
/// as `latest` and `by_checksum` date them; a repository with a timestamp only, or none,
/// answers accordingly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_timestamp_and_snapshot_come_together() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, store) in stores(&dir).await {
        let gun = &Gun::new("example.com/storage/chain").unwrap();
        let c = store.latest_chain(gun, Some(&Role::TARGETS)).await.unwrap();
        assert!(
            c.timestamp.is_none() && c.snapshot.is_none() && c.also.is_none(),
            "{backend}"
        );
        let at = notary_server::storage::now();
        for v in 1..=3 {
            let (s, t) = (format!("s{v}"), format!("ts{v}"));
            store
                .update_many(
                    gun,
                    &[
                        update("targets", v, &format!("t{v}")),
                        update("snapshot", v, &s),
                        update("timestamp", v, &t),
                    ],
                    at,
                    None,
                    None,
                )
                .await
                .unwrap_or_else(|e| panic!("{backend}: {e}"));
        }
        let c = store.latest_chain(gun, Some(&Role::TARGETS)).await.unwrap();
        let (ts, sn, t) = (c.timestamp.unwrap(), c.snapshot.unwrap(), c.also.unwrap());
        assert_eq!(&t.data[..], b"t3", "{backend}");
        let one = store
            .by_checksum(gun, &Role::TARGETS, &sha("t3"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((one.data, one.modified), (t.data, t.modified), "{backend}");
        // Asked for the timestamp or snapshot again, or nothing: no third file.
        for also in [None, Some(&Role::TIMESTAMP), Some(&Role::SNAPSHOT)] {
            let c = store.latest_chain(gun, also).await.unwrap();
            assert!(c.also.is_none(), "{backend} {also:?}");
            assert_eq!(&c.snapshot.unwrap().data[..], b"s3", "{backend}");
        }
        assert_eq!(&ts.data[..], b"ts3", "{backend}");
        assert_eq!(&sn.data[..], b"s3", "{backend}");
        assert_eq!(sn.sha256, sha("s3"), "{backend}");
        // The same files and dates as the one-file loads give.
        let one = store.latest(gun, &Role::TIMESTAMP).await.unwrap().unwrap();
        assert_eq!(
            (one.data, one.modified),
            (ts.data, ts.modified),
            "{backend}"
        );
        let one = store
            .by_checksum(gun, &Role::SNAPSHOT, &sha("s3"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (one.data, one.modified),
            (sn.data, sn.modified),
            "{backend}"
        );

        let only = &Gun::new("example.com/storage/timestamp-only").unwrap();
        store
            .update_many(only, &[update("timestamp", 1, "lonely")], at, None, None)
            .await
            .unwrap();
        let c = store.latest_chain(only, Some(&Role::ROOT)).await.unwrap();
        assert_eq!(&c.timestamp.unwrap().data[..], b"lonely", "{backend}");
        assert!(c.snapshot.is_none() && c.also.is_none(), "{backend}");
    }
}
