//! A throwaway database per test, on either backend.

use std::path::Path;
use std::time::Duration;

use platform::db::{Db, SqliteSizing};

use crate::services::{postgres_admin_url, unreachable};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named test once per backend, as `sqlite::name` and `postgres::name`.
///
/// `on_both_backends!(setup => a, b)` calls `setup(backend)` (an async function returning an
/// `Option`; `None` skips the test) and hands what it returns to the test. The path is resolved
/// inside the generated modules: a function of the calling module is `super::setup`.
/// `on_both_backends!(a, b)` hands the test the [`Backend`] itself.
#[macro_export]
macro_rules! on_both_backends {
    ($setup:path => $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fixture) = $setup($crate::Backend::Sqlite).await {
                        super::$name(fixture).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fixture) = $setup($crate::Backend::Postgres).await {
                        super::$name(fixture).await;
                    }
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// A PostgreSQL database that exists for one test and is dropped afterwards (also when the test
/// fails).
pub struct TempPostgres {
    pub url: String,
    name: String,
}

impl TempPostgres {
    /// `None` (test skipped, with a note) when PostgreSQL is unreachable outside CI; a failure in CI.
    pub async fn create() -> Option<Self> {
        let admin_url = postgres_admin_url();
        let admin = match tokio::time::timeout(Duration::from_secs(5), sqlx::PgPool::connect(&admin_url)).await {
            Ok(Ok(pool)) => pool,
            failure => {
                let why = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                unreachable(
                    "PostgreSQL",
                    &format!("at {admin_url} ({why})"),
                    "start it (pg_ctlcluster <version> main start) or set EMPORIUM_TEST_POSTGRES_URL",
                );
                return None;
            }
        };
        let name = format!("emporium_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b)
            .to_owned();
        Some(Self {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any async context we can borrow: use a small runtime of our own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// One context's database for one test: a temporary SQLite file, or a [`TempPostgres`]. Both go
/// away with it.
pub struct TestDb {
    pub db: Db,
    place: Place,
}

enum Place {
    Dir(tempfile::TempDir),
    // Held for its drop, which drops the database.
    Postgres(#[allow(dead_code)] TempPostgres),
}

impl TestDb {
    /// `context` names the SQLite file (as the app does); `None` when PostgreSQL is skipped.
    pub async fn open(backend: Backend, context: &str) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite(context).await),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// `context`'s SQLite file, its pool sized as the binary sizes it (so a store that needs a
    /// second connection of its own pool while holding one deadlocks here, not in production).
    pub async fn sqlite(context: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open_embedded(dir.path(), context, SqliteSizing::for_context(context, 5))
            .await
            .expect("sqlite");
        Self {
            db,
            place: Place::Dir(dir),
        }
    }

    /// `None` (skipped) when PostgreSQL is unreachable outside CI.
    pub async fn postgres() -> Option<Self> {
        let pg = TempPostgres::create().await?;
        let db = Db::connect(&pg.url, 5).await.expect("postgres");
        Some(Self {
            db,
            place: Place::Postgres(pg),
        })
    }

    /// The directory of a SQLite database.
    pub fn dir(&self) -> Option<&Path> {
        match &self.place {
            Place::Dir(dir) => Some(dir.path()),
            Place::Postgres(_) => None,
        }
    }
}

/// Every table of `db` holding `needle` (case-insensitively) in any column, with how many rows:
/// the scan that proves a card number, or an erased person, is stored nowhere.
pub async fn tables_containing(db: &Db, needle: &str) -> Vec<(String, i64)> {
    let pattern = format!("%{}%", needle.to_lowercase());
    let mut hits = Vec::new();
    match db {
        Db::Sqlite(pool) => {
            let tables: Vec<(String,)> = sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(pool)
                .await
                .expect("tables");
            for (table,) in tables {
                let columns: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_table_info('{table}')"
                )))
                .fetch_all(pool)
                .await
                .expect("columns");
                let mut n = 0;
                for (column,) in columns {
                    let (rows,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT COUNT(*) FROM \"{table}\" WHERE lower(CAST(\"{column}\" AS TEXT)) LIKE $1"
                    )))
                    .bind(&pattern)
                    .fetch_one(pool)
                    .await
                    .expect("scan");
                    n += rows;
                }
                if n > 0 {
                    hits.push((table, n));
                }
            }
        }
        Db::Postgres(pool) => {
            // Tables and materialized views of every schema the context owns.
            let tables: Vec<(String,)> = sqlx::query_as(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
                 WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
                 UNION ALL
                 SELECT format('%I.%I', schemaname, matviewname) FROM pg_matviews",
            )
            .fetch_all(pool)
            .await
            .expect("tables");
            for (table,) in tables {
                let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {table} t WHERE lower(CAST(t AS TEXT)) LIKE $1"
                )))
                .bind(&pattern)
                .fetch_one(pool)
                .await
                .expect("scan");
                if n > 0 {
                    hits.push((table, n));
                }
            }
        }
    }
    hits
}
