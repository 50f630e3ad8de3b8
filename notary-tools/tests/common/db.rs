//! Test databases on the private Postgres that `scripts/test.sh` starts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A fresh, empty database on the test Postgres cluster (started by scripts/test.sh).
pub(crate) async fn create_pg_db() -> String {
    use sqlx::Connection;
    let admin = std::env::var("NOTARY_TEST_PG_URL")
        .expect("NOTARY_TEST_PG_URL is not set: run the tests with `bash scripts/test.sh`, which starts a private Postgres");
    let name = format!("notary_test_{}_{}", std::process::id(), rand_suffix());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test Postgres");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

pub(crate) fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    t * 1000 + N.fetch_add(1, Ordering::Relaxed)
}

/// A fresh database with the schema the Go server's migrations create.
pub(crate) async fn create_go_pg_db() -> String {
    use sqlx::Connection;
    let url = create_pg_db().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let schema = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/go-server-postgres-schema.sql"
    ))
    .unwrap();
    sqlx::raw_sql(&schema).execute(&mut conn).await.unwrap();
    url
}

/// A fresh database with the Go notary-signer's schema (its migrations create `private_keys`;
/// our signer migration is that same table).
pub(crate) async fn create_go_signer_db() -> String {
    use sqlx::Connection;
    let url = create_pg_db().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let schema = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/signer/postgres/0001_private_keys.sql"
    ))
    .unwrap();
    sqlx::raw_sql(&schema).execute(&mut conn).await.unwrap();
    sqlx::raw_sql("CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (1, false);")
        .execute(&mut conn)
        .await
        .unwrap();
    url
}

/// The newest installed PostgreSQL server binaries.
pub(crate) fn pg_bin() -> PathBuf {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    bins.sort();
    bins.pop()
        .expect("PostgreSQL server binaries (apt-get install postgresql)")
}

/// Run a command as the `postgres` user (Postgres refuses root), asserting success.
pub(crate) fn as_postgres(args: &[&str]) {
    let out = Command::new("runuser")
        .arg("-u")
        .arg("postgres")
        .arg("--")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
