//! Shared test set-up: fresh stores on SQLite and PostgreSQL.
#![allow(dead_code)]

use std::time::Duration;

use cordon::sandbox::SimulatedTenant;
use cordon::store::Store;

/// The environment variable that names the PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "CORDON_TEST_POSTGRES_URL";

/// A store on a new SQLite file, and the directory that holds it.
pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cordon.db").display());
    (Store::connect(&url).await.unwrap(), dir)
}

/// The URL of a new, empty PostgreSQL database, or `None` (with a note on
/// stderr) when no server is configured.
pub async fn postgres_database() -> Option<String> {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("skipped: {POSTGRES_ENV} is not set, so the PostgreSQL path is not tested");
        return None;
    };
    use sqlx::Connection;
    let name = format!("cordon_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    Some(format!("{prefix}/{name}"))
}

/// A store on a new PostgreSQL database, or `None` when not configured.
pub async fn postgres_store() -> Option<Store> {
    let url = postgres_database().await?;
    Some(Store::connect(&url).await.unwrap())
}

/// Drops the triggers that keep `audit_events` append-only, as an attacker
/// with owner rights on the database could, so that a test can tamper.
pub async fn allow_audit_tampering(store: &Store) {
    let statements: &[&str] = match store.backend() {
        cordon::store::Backend::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
        ],
        cordon::store::Backend::Postgres => &[
            "DROP TRIGGER audit_events_no_update_or_delete ON audit_events",
            "DROP TRIGGER audit_events_no_truncate ON audit_events",
        ],
    };
    for statement in statements {
        sqlx::query(statement).execute(store.pool()).await.unwrap();
    }
}

/// Graph writes about `user_id` (anything but reads and the group check),
/// in the order Graph received them, as "METHOD path" with the path below
/// the API version, e.g. "PATCH /users/{id}".
pub fn graph_writes(tenant: &SimulatedTenant, user_id: &str) -> Vec<String> {
    tenant
        .graph()
        .calls()
        .iter()
        .filter(|c| c.method != "GET" && c.path.contains(user_id))
        .filter(|c| !c.path.ends_with("checkMemberGroups"))
        .map(|c| {
            let path = c.path.trim_start_matches("/graph/v1.0");
            format!("{} {path}", c.method)
        })
        .collect()
}

/// Polls `check` until it holds; panics naming `what` after about 10 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Declares each named `async fn(Option<String>)` of the calling file as
/// two tests: `sqlite::NAME` (given `None`, so it makes its own SQLite
/// store) and `postgres::NAME` (given a new PostgreSQL database, or
/// skipped with a note when none is configured).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(None).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(url) = super::support::postgres_database().await else {
                        return;
                    };
                    super::$name(Some(url)).await;
                }
            )*
        }
    };
}
