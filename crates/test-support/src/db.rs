//! A throwaway database per test, on either backend.

use std::path::Path;
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

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

/// A PostgreSQL database that is one test's alone, and goes back to this process's spares when
/// the test ends (also when it fails).
///
/// Why spares rather than a database created and dropped per test: `CREATE DATABASE` copies
/// template1 through the WAL, and `DROP DATABASE` forces a checkpoint, which writes out whatever
/// every other running test has dirtied meanwhile; with seven databases per app test, those were
/// most of a PostgreSQL test's set-up and tear-down. A database given back has its sessions ended
/// and a new name (so a straggler of the finished test that reconnects finds nothing), then an
/// empty `public` schema, the only one the contexts write to: to the next test it is as new.
/// The spares left when the process exits are dropped then.
pub struct TempPostgres {
    pub url: String,
    name: String,
}

/// Names of the emptied databases this process can hand out.
static SPARES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn spares() -> std::sync::MutexGuard<'static, Vec<String>> {
    SPARES.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TempPostgres {
    /// `None` (test skipped, with a note) when PostgreSQL is unreachable outside CI; a failure in CI.
    pub async fn create() -> Option<Self> {
        let admin_url = postgres_admin_url();
        let spare = spares().pop();
        let name = match spare {
            Some(name) => name,
            None => create_database(&admin_url).await?,
        };
        Some(Self {
            url: database_url(&admin_url, &name),
            name,
        })
    }
}

/// `admin_url` with the database `name` in place of its own.
fn database_url(admin_url: &str, name: &str) -> String {
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    format!("{base}/{name}")
}

fn new_name() -> String {
    format!("emporium_test_{}", uuid::Uuid::new_v4().simple())
}

/// A new database's name, or `None` (with the note or failure of [`unreachable`]).
async fn create_database(admin_url: &str) -> Option<String> {
    let mut admin = match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(admin_url)).await {
        Ok(Ok(conn)) => conn,
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
    let name = new_name();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let _ = admin.close().await;
    Some(name)
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any async context we can borrow.
        on_own_runtime(move || async move {
            let admin_url = postgres_admin_url();
            let Ok(mut admin) = PgConnection::connect(&admin_url).await else {
                return;
            };
            match recycle(&mut admin, &admin_url, &name).await {
                Ok(spare) => {
                    spares().push(spare);
                    DROP_SPARES_AT_EXIT.call_once(|| {
                        at_exit::register(drop_spares);
                    });
                }
                // Whatever stopped the reuse, the database (under either name) goes.
                Err(left) => drop_database(&mut admin, &left).await,
            }
            let _ = admin.close().await;
        });
    }
}

/// Runs `work` to its end on a thread and a small runtime of its own, for the synchronous places
/// (`Drop`, the exit hook) that must wait for database work. Never panics: the exit hook is an
/// `extern "C"` function, which aborts the process when something unwinds out of it.
fn on_own_runtime<F: Future<Output = ()>>(work: impl FnOnce() -> F + Send + 'static) {
    let thread = std::thread::Builder::new().spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            rt.block_on(work());
        }
    });
    if let Ok(handle) = thread {
        let _ = handle.join();
    }
}

static DROP_SPARES_AT_EXIT: Once = Once::new();

/// Ends `name`'s sessions, renames it and empties its `public` schema: the spare's name, or the
/// name of the database to drop instead.
async fn recycle(admin: &mut PgConnection, admin_url: &str, name: &str) -> Result<String, String> {
    let spare = new_name();
    let mut attempts = 0;
    loop {
        let ended = sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut *admin)
            .await;
        if ended.is_err() {
            return Err(name.to_owned());
        }
        // PostgreSQL checks for sessions every 100 ms while it waits; they end within a few.
        for _ in 0..250 {
            let left: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(name)
                .fetch_one(&mut *admin)
                .await;
            if !matches!(left, Ok(n) if n > 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The rename waits (up to 5 s) for the ended sessions to go; a pool of the finished test
        // that reconnected meanwhile makes it fail, and the sessions are ended again.
        let renamed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{name}\" RENAME TO \"{spare}\""
        )))
        .execute(&mut *admin)
        .await;
        match renamed {
            Ok(_) => break,
            Err(e) if attempts < 5 && e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55006") => {
                attempts += 1;
            }
            Err(_) => return Err(name.to_owned()),
        }
    }
    let emptied = async {
        let mut conn = PgConnection::connect(&database_url(admin_url, &spare)).await?;
        // As template1's: owned by the database's owner, usable by all (PostgreSQL 15's default).
        sqlx::raw_sql(
            "DROP SCHEMA public CASCADE; \
             CREATE SCHEMA public AUTHORIZATION pg_database_owner; \
             GRANT USAGE ON SCHEMA public TO PUBLIC; \
             COMMENT ON SCHEMA public IS 'standard public schema'",
        )
        .execute(&mut conn)
        .await?;
        conn.close().await
    };
    match emptied.await {
        Ok(()) => Ok(spare),
        Err(_) => Err(spare),
    }
}

async fn drop_database(admin: &mut PgConnection, name: &str) {
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(admin)
    .await;
}

/// Drops the spares, as the process exits.
extern "C" fn drop_spares() {
    let names = std::mem::take(&mut *spares());
    if names.is_empty() {
        return;
    }
    // The exiting thread may be inside a runtime.
    on_own_runtime(move || async move {
        if let Ok(mut admin) = PgConnection::connect(&postgres_admin_url()).await {
            for name in &names {
                drop_database(&mut admin, name).await;
            }
            let _ = admin.close().await;
        }
    });
}

/// `atexit`, the one way to run something once every test of the binary is done: the test
/// harness offers no hook of its own.
#[allow(unsafe_code)]
mod at_exit {
    unsafe extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
    }

    pub fn register(callback: extern "C" fn()) {
        // SAFETY: `atexit` only stores the pointer to a function that lives as long as the
        // process; C's exit calls it once, after the test harness returns from `main`.
        let _ = unsafe { atexit(callback) };
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
