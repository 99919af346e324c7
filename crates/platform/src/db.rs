//! Database access: a context gets a [`Db`] (SQLite in embedded mode, PostgreSQL in production)
//! and builds its own store on it. Each context owns its schema and migrations.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use crate::health::HealthCheck;

mod sqlite;
pub use sqlite::{SqliteConn, SqliteDb, SqliteTx};

/// The connections to one context's database.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot create the data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error("migrating the {context} database failed: {source}")]
    Migrate {
        context: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// Strips a password from a URL before it is shown anywhere.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The page cache of one SQLite connection, in KiB, unless its [`SqliteSizing`] says otherwise.
pub const SQLITE_PAGE_CACHE_KIB: u32 = 512;
/// Connections of one SQLite pool at most, whatever `EMPORIUM_DB_MAX_CONNECTIONS` says. A file
/// takes one writer at a time and readers beyond the cores add no speed, while each connection
/// costs a thread, a page cache and a statement cache: with 10 per pool and 7 pools, a 400k
/// mixed-request soak ended at 148 MB, with 3 per pool at 97 MB, at the same request rate
/// (docs/benchmarks.md, "Memory after a mixed soak").
const SQLITE_MAX_CONNECTIONS: u32 = 4;
/// The one context whose SQLite file is mostly read, by long searches that run side by side.
const SEARCHING_CONTEXT: &str = "catalog";

/// How large a SQLite pool is: its connections and each connection's page cache. PostgreSQL
/// pools ignore it and take `EMPORIUM_DB_MAX_CONNECTIONS` as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteSizing {
    pub connections: u32,
    pub page_cache_kib: u32,
}

impl SqliteSizing {
    /// `connections` (at most 4) with the default page cache.
    pub const fn connections(connections: u32) -> Self {
        Self {
            connections,
            page_cache_kib: SQLITE_PAGE_CACHE_KIB,
        }
    }

    /// The pool the binary (and the tests, so they find what it would) opens for `context`
    /// when `EMPORIUM_DB_MAX_CONNECTIONS` is `requested`.
    ///
    /// One connection for every context but catalog. SQLite discards a connection's whole page
    /// cache whenever another connection of the file has written since its last transaction, so
    /// with several connections taking turns on a write-heavy file every transaction re-reads its
    /// pages from the OS, and writers wait out each other's lock in SQLite's sleeping busy
    /// handler. One connection keeps its cache valid and queues the statements in the pool
    /// instead: checkout (embedded, pinned to one core) went from 72.6–76.1 to 90.2–94.5
    /// orders/s and from 12.6–13.4 to 10.3–10.8 ms of CPU per order (docs/benchmarks.md,
    /// "Checkout: one SQLite connection per context").
    ///
    /// Catalog, whose long searches run side by side and which writes little, keeps `requested`
    /// up to one per core (and at most 4): a search is CPU work, so connections beyond the cores
    /// add no speed. Its searches read several MB of the file each (a broad word's postings, the
    /// sizes bm25 needs, the visibility index), so each of its connections keeps 4 MiB of pages:
    /// with the default 512 KiB a broad search's p99 at 100k products was 31–39 ms against
    /// 16–20 ms (docs/benchmarks.md).
    pub fn for_context(context: &str, requested: u32) -> Self {
        if context == SEARCHING_CONTEXT {
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            Self {
                connections: requested.min(u32::try_from(cores).unwrap_or(u32::MAX)).max(1),
                page_cache_kib: 4096,
            }
        } else {
            Self::connections(1)
        }
    }
}

/// A PostgreSQL connection idle this long is pinged before it is handed out again.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

impl Db {
    /// Connects to `url` (`postgres://...` or `sqlite:...`) with a pool of `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        Self::connect_sized(url, max_connections, SqliteSizing::connections(max_connections)).await
    }

    /// Connects to `url` with `postgres_connections` when it names PostgreSQL and `sqlite`'s
    /// sizing when it names a SQLite file.
    pub async fn connect_sized(url: &str, postgres_connections: u32, sqlite: SqliteSizing) -> Result<Self, DbError> {
        let err = |source| DbError::Connect {
            url: redact_url(url),
            source,
        };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(err)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // Each connection keeps its own page cache (2 MB by default); with a pool per
                // context that is most of the embedded process's memory. The OS page cache holds
                // the files anyway, so a small per-connection cache costs little speed.
                .pragma("cache_size", format!("-{}", sqlite.page_cache_kib))
                .log_statements(crate::telemetry::sql_statement_log_level());
            let db = SqliteDb::open(&options, sqlite.connections.clamp(1, SQLITE_MAX_CONNECTIONS))
                .await
                .map_err(err)?;
            Ok(Self::Sqlite(db))
        } else {
            let options = PgConnectOptions::from_str(url)
                .map_err(err)?
                .log_statements(crate::telemetry::sql_statement_log_level());
            let pool = PgPoolOptions::new()
                .max_connections(postgres_connections)
                .acquire_timeout(Duration::from_secs(5))
                // sqlx pings every connection it hands out by default: a round trip to the server
                // per transaction or statement (about fifty per checkout). A connection back from
                // use a moment ago is known to work; only one that sat idle is checked, as a
                // server restart or a dropped socket shows there.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_IDLE_AFTER {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await
                .map_err(err)?;
            Ok(Self::Postgres(pool))
        }
    }

    /// The SQLite file for `context` under `data_dir` (embedded mode), creating the directory.
    pub async fn open_embedded(data_dir: &Path, context: &str, sizing: SqliteSizing) -> Result<Self, DbError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
            dir: data_dir.display().to_string(),
            source,
        })?;
        let url = format!("sqlite://{}", data_dir.join(format!("{context}.db")).display());
        Self::connect_sized(&url, sizing.connections, sizing).await
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgresql",
        }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            Self::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        }
    }

    /// Waits for checked-out connections to return, then closes the pool.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }

    /// A readiness check for this pool, reported under `name`.
    pub fn health_check(&self, name: &str) -> std::sync::Arc<dyn HealthCheck> {
        std::sync::Arc::new(DbHealth {
            name: format!("{name}.database"),
            db: self.clone(),
        })
    }
}

/// Pools reported in `/metrics`, by context.
static WATCHED: std::sync::Mutex<Vec<(&'static str, Db)>> = std::sync::Mutex::new(Vec::new());

/// How often each watched pool is probed with a timed acquire.
const PROBE_EVERY: Duration = Duration::from_secs(5);

impl Db {
    /// Reports this pool in `/metrics` under `context` from now on: its size, idle and in-use
    /// connections and maximum (read at each scrape), and every [`PROBE_EVERY`] a timed acquire
    /// (`db_pool_acquire_duration_seconds`; `db_pool_acquire_timeouts_total` when it times out).
    /// The probe waits in the same queue as the requests, so its wait is theirs.
    pub fn watch_pool(&self, context: &'static str) {
        let mut watched = crate::sync::lock(&WATCHED);
        watched.retain(|(c, db)| *c != context && !db.is_closed());
        watched.push((context, self.clone()));
        drop(watched);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let db = self.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if db.is_closed() {
                    return;
                }
                let started = std::time::Instant::now();
                let outcome = match &db {
                    Self::Sqlite(p) => p.acquire().await.map(drop),
                    Self::Postgres(p) => p.acquire().await.map(drop),
                };
                match outcome {
                    Ok(()) => metrics::histogram!("db_pool_acquire_duration_seconds", "context" => context)
                        .record(started.elapsed().as_secs_f64()),
                    Err(sqlx::Error::PoolTimedOut) => {
                        metrics::counter!("db_pool_acquire_timeouts_total", "context" => context).increment(1);
                    }
                    Err(_) => {}
                }
            }
        });
    }

    fn is_closed(&self) -> bool {
        match self {
            Self::Sqlite(p) => p.is_closed(),
            Self::Postgres(p) => p.is_closed(),
        }
    }

    /// (open connections, idle connections, maximum).
    fn pool_figures(&self) -> (u32, usize, u32) {
        match self {
            Self::Sqlite(p) => (p.size(), p.num_idle(), p.size()),
            Self::Postgres(p) => (p.size(), p.num_idle(), p.options().get_max_connections()),
        }
    }
}

/// Sets the pool gauges of every watched pool (called when `/metrics` is rendered).
pub(crate) fn report_pools() {
    let watched = crate::sync::lock(&WATCHED);
    for (context, db) in watched.iter() {
        let context = *context;
        let (size, idle, max) = db.pool_figures();
        let idle = idle.min(size as usize) as f64;
        metrics::gauge!("db_pool_connections", "context" => context).set(f64::from(size));
        metrics::gauge!("db_pool_connections_idle", "context" => context).set(idle);
        metrics::gauge!("db_pool_connections_in_use", "context" => context).set(f64::from(size) - idle);
        metrics::gauge!("db_pool_max_connections", "context" => context).set(f64::from(max));
    }
}

pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "db_pool_connections",
        "Open connections in the context's pool (idle and in use)."
    );
    metrics::describe_gauge!("db_pool_connections_idle", "Idle connections in the context's pool.");
    metrics::describe_gauge!(
        "db_pool_connections_in_use",
        "Connections of the context's pool checked out right now."
    );
    metrics::describe_gauge!(
        "db_pool_max_connections",
        "The most connections the context's pool may open."
    );
    metrics::describe_histogram!(
        "db_pool_acquire_duration_seconds",
        metrics::Unit::Seconds,
        "Time a probe waited for a connection from the context's pool (every 5 s)."
    );
    metrics::describe_counter!(
        "db_pool_acquire_timeouts_total",
        "Waits for a connection of the context's pool that gave up (acquire timeout)."
    );
}

struct DbHealth {
    name: String,
    db: Db,
}

#[async_trait::async_trait]
impl HealthCheck for DbHealth {
    fn name(&self) -> String {
        self.name.clone()
    }
    async fn check(&self) -> Result<(), String> {
        self.db.ping().await.map_err(|e| e.to_string())
    }
}

/// Evaluates `$body` with `$pool` bound to whichever pool `$db` holds: for statements whose text
/// and binds are the same on both backends (the body must have one type on both).
#[macro_export]
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// The number of rows a statement changed, for code generic over the backend.
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// True when `err` is a unique-constraint violation on a constraint or index whose name contains
/// `name` (SQLite reports columns, PostgreSQL the index name: callers pass a fragment both share).
pub fn is_unique_violation(err: &sqlx::Error, name: &str) -> bool {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            db.constraint().is_some_and(|c| c.contains(name)) || db.message().contains(name)
        }
        _ => false,
    }
}

/// What a SQL store needs of its backend beyond sqlx's `Database`: the handle its statements run
/// on (`&Backend::Pool` is a `sqlx::Executor`) and the transaction it writes in.
pub trait Backend: sqlx::Database {
    /// SQLite: the context's own [`SqliteDb`]; PostgreSQL: sqlx's pool.
    type Pool: Clone + Send + Sync + std::fmt::Debug + 'static;
    /// A connection held for a caller alone; it derefs to the connection.
    type Conn: DerefMut<Target = Self::Connection> + Send + 'static;
    /// An open transaction; it derefs to the connection it runs on.
    type Tx: DerefMut<Target = Self::Connection> + Send + 'static;

    fn acquire(pool: &Self::Pool) -> impl Future<Output = Result<Self::Conn, sqlx::Error>> + Send;

    /// Opens a transaction with `statement`, or the backend's plain `BEGIN`.
    fn begin_on(
        pool: &Self::Pool,
        statement: Option<&'static str>,
    ) -> impl Future<Output = Result<Self::Tx, sqlx::Error>> + Send;
    fn commit(tx: Self::Tx) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    fn rollback(tx: Self::Tx) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    /// Ends a transaction dropped open: rolled back before its connection (and `turn`, the
    /// writer's turn it holds) goes to anyone else.
    fn abandon(tx: Self::Tx, turn: Option<tokio::sync::OwnedMutexGuard<()>>);
}

impl Backend for sqlx::Sqlite {
    type Pool = SqliteDb;
    type Conn = SqliteConn;
    type Tx = SqliteTx;

    async fn acquire(pool: &SqliteDb) -> Result<SqliteConn, sqlx::Error> {
        pool.acquire().await
    }

    async fn begin_on(pool: &SqliteDb, statement: Option<&'static str>) -> Result<SqliteTx, sqlx::Error> {
        pool.begin_with(statement.unwrap_or("BEGIN")).await
    }
    async fn commit(tx: SqliteTx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }
    async fn rollback(tx: SqliteTx) -> Result<(), sqlx::Error> {
        tx.rollback().await
    }
    fn abandon(mut tx: SqliteTx, turn: Option<tokio::sync::OwnedMutexGuard<()>>) {
        tx.roll_back_in_background(turn);
    }
}

impl Backend for sqlx::Postgres {
    type Pool = PgPool;
    type Conn = sqlx::pool::PoolConnection<sqlx::Postgres>;
    type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

    async fn acquire(pool: &PgPool) -> Result<Self::Conn, sqlx::Error> {
        pool.acquire().await
    }

    async fn begin_on(pool: &PgPool, statement: Option<&'static str>) -> Result<Self::Tx, sqlx::Error> {
        match statement {
            Some(statement) => pool.begin_with(statement).await,
            None => pool.begin().await,
        }
    }
    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }
    async fn rollback(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.rollback().await
    }
    fn abandon(tx: Self::Tx, turn: Option<tokio::sync::OwnedMutexGuard<()>>) {
        // sqlx queues the ROLLBACK on the connection before it goes back to the pool.
        drop(tx);
        drop(turn);
    }
}

/// A SQL store's connections and how it writes on its backend, the same for every context:
/// - SQLite opens write transactions with `BEGIN IMMEDIATE` (the write lock from the start, so a
///   transaction never fails upgrading it), and inside this process writers queue on a mutex:
///   SQLite has one writer at a time anyway, and queueing here avoids busy-wait back-off (and
///   `database is locked`) when hundreds of requests race for the same rows.
/// - PostgreSQL opens a plain `BEGIN` and locks rows it must read before writing with
///   [`StorePool::for_update`].
pub struct StorePool<DB: Backend> {
    pool: DB::Pool,
    begin: Option<&'static str>,
    for_update: &'static str,
    writer: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

/// An open write transaction, with the writer's turn it holds (SQLite) until it ends. It derefs
/// to the connection (`&mut *tx` runs a statement in it); dropped without [`Write::commit`], it
/// is rolled back.
pub struct Write<DB: Backend> {
    tx: Option<DB::Tx>,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<DB: Backend> Write<DB> {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        DB::commit(self.tx.take().expect("a write holds its transaction until it ends")).await
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        DB::rollback(self.tx.take().expect("a write holds its transaction until it ends")).await
    }
}

impl<DB: Backend> Deref for Write<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        self.tx.as_ref().expect("a write holds its transaction until it ends")
    }
}

impl<DB: Backend> DerefMut for Write<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.tx.as_mut().expect("a write holds its transaction until it ends")
    }
}

impl<DB: Backend> Drop for Write<DB> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            DB::abandon(tx, self.turn.take());
        }
    }
}

/// Opens a transaction on `pool` with `statement` (or the backend's plain `BEGIN`) without queueing
/// for a writer's turn: for the stores that let SQLite's busy timeout order their writers.
pub async fn begin<DB: Backend>(pool: &DB::Pool, statement: Option<&'static str>) -> Result<Write<DB>, sqlx::Error> {
    let tx = DB::begin_on(pool, statement).await?;
    Ok(Write {
        tx: Some(tx),
        turn: None,
    })
}

impl StorePool<sqlx::Sqlite> {
    pub fn sqlite(pool: SqliteDb) -> Self {
        Self {
            pool,
            begin: Some("BEGIN IMMEDIATE"),
            for_update: "",
            writer: Some(std::sync::Arc::new(tokio::sync::Mutex::new(()))),
        }
    }
}

impl StorePool<sqlx::Postgres> {
    pub fn postgres(pool: PgPool) -> Self {
        Self {
            pool,
            begin: None,
            for_update: " FOR UPDATE",
            writer: None,
        }
    }
}

impl<DB: Backend> StorePool<DB> {
    /// For reads, and writes of one statement that need no transaction.
    pub fn pool(&self) -> &DB::Pool {
        &self.pool
    }

    /// One connection for several statements in a row (outside a transaction).
    pub async fn acquire(&self) -> Result<DB::Conn, sqlx::Error> {
        DB::acquire(&self.pool).await
    }

    /// Appended to a `SELECT` that must lock the rows it reads: ` FOR UPDATE` on PostgreSQL,
    /// nothing on SQLite, whose `BEGIN IMMEDIATE` already holds the database's write lock.
    pub fn for_update(&self) -> &'static str {
        self.for_update
    }

    /// Opens a write transaction (after waiting for the writer's turn on SQLite). Every write
    /// transaction should start with a write, so that PostgreSQL takes its row locks first.
    pub async fn write(&self) -> Result<Write<DB>, sqlx::Error> {
        let turn = match &self.writer {
            Some(m) => Some(m.clone().lock_owned().await),
            None => None,
        };
        let mut write = begin(&self.pool, self.begin).await?;
        write.turn = turn;
        Ok(write)
    }
}

/// The ids a statement of the form `SELECT id ... $1 ... LIMIT $2` finds, with `$1` a time: for
/// the sweeps that pick rows due or stale at that time, a bounded batch at a time.
pub async fn ids_at<'c, DB, E>(
    pool: E,
    statement: &'static str,
    at: time::OffsetDateTime,
    limit: u32,
) -> Result<Vec<uuid::Uuid>, sqlx::Error>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'q> time::OffsetDateTime: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'r> uuid::Uuid: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
{
    let rows = sqlx::query_as::<_, (uuid::Uuid,)>(statement)
        .bind(at)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The `VALUES` list of a multi-row `INSERT`: `rows` tuples of `columns` numbered placeholders,
/// `($1, $2), ($3, $4)`, bound row by row in that order. One statement instead of one per row
/// saves a round trip per extra row inside the transaction (and its locks' hold time).
pub fn values_rows(rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            text.push('$');
            text.push_str(&(row * columns + column + 1).to_string());
        }
        text.push(')');
    }
    text
}

/// The numbered placeholders of an `IN (...)` list, `$1, $2, $3`, for `count` values bound in that
/// order: only placeholders are generated, the values themselves are bound.
pub fn placeholder_list(count: usize) -> String {
    placeholder_list_from(1, count)
}

/// [`placeholder_list`] numbered from `$first`, for a list bound after other parameters.
pub fn placeholder_list_from(first: usize, count: usize) -> String {
    let mut text = String::with_capacity(count * 4);
    for n in first..first + count {
        if n > first {
            text.push_str(", ");
        }
        text.push('$');
        text.push_str(&n.to_string());
    }
    text
}

/// Writes an `impl` block of a SQL store that is generic over the backend, with the one list of
/// bounds such a store needs: what the statements bind and read (ids, text, integers, booleans,
/// bytes, timestamps, and optional ones), a connection and pool that execute, and the outbox.
/// Both backends meet every bound; the store is instantiated for `Sqlite` and `Postgres` only.
///
/// ```ignore
/// platform::sql_store! {
///     impl SqlStore<DB> { /* helpers */ }
/// }
/// platform::sql_store! {
///     #[async_trait::async_trait]
///     impl CartStore for SqlStore<DB> { /* the port */ }
/// }
/// ```
///
/// A macro rather than a trait with a blanket impl: Rust implies only a trait's bounds on `Self`
/// at its use sites, and most of these bound other types (`Uuid: Encode<'q, DB>`), so an alias
/// trait would still need the whole list repeated wherever it is used (ADR 0012).
#[macro_export]
macro_rules! sql_store {
    ($(#[$attr:meta])* impl $store:ident<$db:ident> { $($body:tt)* }) => {
        $crate::sql_store!(@bounds [$(#[$attr])*] [] $store $db { $($body)* });
    };
    ($(#[$attr:meta])* impl $port:ident for $store:ident<$db:ident> { $($body:tt)* }) => {
        $crate::sql_store!(@bounds [$(#[$attr])*] [$port for] $store $db { $($body)* });
    };
    (@bounds [$($attr:tt)*] [$($port:tt)*] $store:ident $db:ident { $($body:tt)* }) => {
        $($attr)*
        impl<$db> $($port)* $store<$db>
        where
            $db: $crate::db::__sql_store::sqlx::Database,
            $db::Connection: $crate::events::OutboxConnection,
            for<'c> &'c mut $db::Connection: $crate::db::__sql_store::sqlx::Executor<'c, Database = $db>,
            $db: $crate::db::Backend,
            for<'c> &'c <$db as $crate::db::Backend>::Pool: $crate::db::__sql_store::sqlx::Executor<'c, Database = $db>,
            $db::Arguments: $crate::db::__sql_store::sqlx::IntoArguments<$db>,
            $db::QueryResult: $crate::db::RowsAffected,
            for<'q> &'q str: $crate::db::__sql_store::sqlx::ColumnIndex<$db::Row>,
            usize: $crate::db::__sql_store::sqlx::ColumnIndex<$db::Row>,
            for<'q> $crate::db::__sql_store::Uuid: $crate::db::__sql_store::Value<'q, $db>,
            for<'q> String: $crate::db::__sql_store::Value<'q, $db>,
            for<'q> i64: $crate::db::__sql_store::Value<'q, $db>,
            for<'q> bool: $crate::db::__sql_store::Value<'q, $db>,
            for<'q> Vec<u8>: $crate::db::__sql_store::Value<'q, $db>,
            for<'q> $crate::db::__sql_store::OffsetDateTime: $crate::db::__sql_store::Value<'q, $db>,
            for<'q> &'q str: $crate::db::__sql_store::sqlx::Encode<'q, $db> + $crate::db::__sql_store::sqlx::Type<$db>,
            for<'q> &'q [u8]: $crate::db::__sql_store::sqlx::Encode<'q, $db> + $crate::db::__sql_store::sqlx::Type<$db>,
            for<'q> Option<&'q str>: $crate::db::__sql_store::sqlx::Encode<'q, $db>,
            for<'q> Option<$crate::db::__sql_store::Uuid>: $crate::db::__sql_store::Nullable<'q, $db>,
            for<'q> Option<String>: $crate::db::__sql_store::Nullable<'q, $db>,
            for<'q> Option<i64>: $crate::db::__sql_store::Nullable<'q, $db>,
            for<'q> Option<bool>: $crate::db::__sql_store::Nullable<'q, $db>,
            for<'q> Option<$crate::db::__sql_store::OffsetDateTime>: $crate::db::__sql_store::Nullable<'q, $db>,
        {
            $($body)*
        }
    };
}

/// What [`sql_store!`] names from the calling crate's point of view.
#[doc(hidden)]
pub mod __sql_store {
    pub use sqlx;
    pub use time::OffsetDateTime;
    pub use uuid::Uuid;

    /// A column type both bound and read: shorthand inside [`sql_store!`]'s list (a bound on
    /// the type itself, which Rust does imply at use sites).
    pub trait Value<'q, DB: sqlx::Database>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB> {}
    impl<'q, DB: sqlx::Database, T: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>> Value<'q, DB> for T {}

    /// An optional column type both bound and read.
    pub trait Nullable<'q, DB: sqlx::Database>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> {}
    impl<'q, DB: sqlx::Database, T: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB>> Nullable<'q, DB> for T {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists_number_from_one() {
        assert_eq!(placeholder_list(0), "");
        assert_eq!(placeholder_list(1), "$1");
        assert_eq!(placeholder_list(3), "$1, $2, $3");
        assert_eq!(placeholder_list_from(6, 0), "");
        assert_eq!(placeholder_list_from(6, 3), "$6, $7, $8");
    }

    #[test]
    fn values_rows_numbers_placeholders_row_by_row() {
        assert_eq!(values_rows(1, 3), "($1, $2, $3)");
        assert_eq!(values_rows(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(values_rows(0, 2), "");
    }

    #[test]
    fn passwords_never_leave_redact_url() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn sqlite_pools_are_one_connection_except_catalogs_one_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let cores = u32::try_from(cores).unwrap_or(u32::MAX);
        for context in ["identity", "inventory", "cart", "ordering", "payments", "notifications"] {
            assert_eq!(
                SqliteSizing::for_context(context, 10),
                SqliteSizing::connections(1),
                "{context}"
            );
        }
        let catalog = SqliteSizing::for_context("catalog", 10);
        assert_eq!(catalog.connections, cores.min(10));
        assert_eq!(catalog.page_cache_kib, 4096);
        assert_eq!(SqliteSizing::for_context("catalog", 1).connections, 1);
        assert_eq!(
            SqliteSizing::for_context("catalog", 0).connections,
            1,
            "a pool needs a connection"
        );
    }

    /// `.cargo/config.toml` (which the Docker build copies too) builds SQLite with `SQLITE_ENABLE_QPSG`. Without
    /// it, a statement with a bound `LIMIT` is prepared again every time it runs.
    #[tokio::test]
    async fn sqlite_keeps_a_statements_plan_whatever_is_bound_to_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = Db::open_embedded(dir.path(), "probe", SqliteSizing::connections(1))
            .await
            .expect("open");
        let Db::Sqlite(pool) = &db else {
            unreachable!("an embedded database is SQLite")
        };
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(pool)
            .await
            .expect("compile options");
        assert!(
            options.iter().any(|o| o == "ENABLE_QPSG"),
            "SQLite was built without SQLITE_ENABLE_QPSG (LIBSQLITE3_FLAGS in .cargo/config.toml): {options:?}"
        );
        db.close().await;
    }

    #[tokio::test]
    async fn embedded_database_is_created_under_the_data_dir() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = Db::open_embedded(dir.path(), "probe", SqliteSizing::connections(2))
            .await
            .expect("open");
        db.ping().await.expect("ping");
        assert!(dir.path().join("probe.db").exists());
        db.close().await;
    }
}
