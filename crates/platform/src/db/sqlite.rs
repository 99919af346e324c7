//! A context's SQLite connections, kept by the process rather than by sqlx's pool.
//!
//! sqlx runs each SQLite connection on a thread of its own, and its pool pings every connection
//! it takes back (a spawned task, then a hop to the connection's thread and back) whatever the
//! pool's options say. A checkout returned about 24 connections to pools, and those pings were a
//! quarter of the embedded process's thread switches (docs/benchmarks.md, "Embedded checkout:
//! where the thread switches come from"). A file does not hang up, and sqlx's connection thread
//! runs commands in the order they are sent, so a connection handed back here goes straight to
//! the next caller: no ping, no spawned task.
//!
//! What the ping was also for is kept: a transaction left open by a caller that was cancelled or
//! failed is rolled back before anyone else runs a statement on that connection.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Executor, Sqlite};

/// How long a caller waits for a connection before giving up with [`sqlx::Error::PoolTimedOut`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A context's SQLite connections: a fixed number, opened up front (one for most contexts), handed
/// out one caller at a time. Cloning shares them.
#[derive(Clone)]
pub struct SqliteDb {
    shared: Arc<Shared>,
}

struct Shared {
    /// One permit per connection: a caller holds one while it uses a connection.
    permits: Arc<tokio::sync::Semaphore>,
    idle: std::sync::Mutex<Vec<Slot>>,
    size: u32,
}

struct Slot {
    conn: SqliteConnection,
    /// A transaction was begun on it and not ended: roll it back before the next use.
    in_transaction: bool,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDb")
            .field("size", &self.shared.size)
            .field("idle", &self.num_idle())
            .finish()
    }
}

impl SqliteDb {
    /// Opens `connections` (at least one) to the file `options` name.
    pub async fn open(options: &SqliteConnectOptions, connections: u32) -> Result<Self, sqlx::Error> {
        let size = connections.max(1);
        let mut idle = Vec::with_capacity(size as usize);
        for _ in 0..size {
            idle.push(Slot {
                conn: options.connect().await?,
                in_transaction: false,
            });
        }
        Ok(Self {
            shared: Arc::new(Shared {
                permits: Arc::new(tokio::sync::Semaphore::new(size as usize)),
                idle: std::sync::Mutex::new(idle),
                size,
            }),
        })
    }

    /// A connection for this caller alone until the returned handle is dropped.
    pub async fn acquire(&self) -> Result<SqliteConn, sqlx::Error> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.shared.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let slot = crate::sync::lock(&self.shared.idle)
            .pop()
            .expect("a permit is only granted while a connection is idle");
        let mut conn = SqliteConn {
            slot: Some(slot),
            shared: self.shared.clone(),
            _permit: permit,
        };
        if conn.slot().in_transaction {
            conn.rollback().await?;
        }
        Ok(conn)
    }

    /// Opens a transaction with `statement` (`BEGIN` or `BEGIN IMMEDIATE`) on a connection of its
    /// own. Dropped without [`SqliteTx::commit`], it is rolled back.
    pub async fn begin_with(&self, statement: &'static str) -> Result<SqliteTx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        // Marked first: if this caller is cancelled while BEGIN runs, the next user rolls back.
        conn.slot_mut().in_transaction = true;
        if let Err(e) = sqlx::query(statement).execute(&mut *conn).await {
            // A BEGIN that failed (the lock not granted within the busy timeout) began nothing.
            conn.slot_mut().in_transaction = false;
            return Err(e);
        }
        Ok(SqliteTx { conn: Some(conn) })
    }

    /// [`SqliteDb::begin_with`] with a plain `BEGIN` (a deferred transaction).
    pub async fn begin(&self) -> Result<SqliteTx, sqlx::Error> {
        self.begin_with("BEGIN").await
    }

    /// Connections open.
    pub fn size(&self) -> u32 {
        self.shared.size
    }

    /// Connections nobody is using right now.
    pub fn num_idle(&self) -> usize {
        self.shared.permits.available_permits()
    }

    pub fn is_closed(&self) -> bool {
        self.shared.permits.is_closed()
    }

    /// Waits for every connection to come back, then closes them all. Callers waiting for a
    /// connection, and any that ask later, get [`sqlx::Error::PoolClosed`].
    pub async fn close(&self) {
        let Ok(all) = self.shared.permits.acquire_many(self.shared.size).await else {
            return; // closed by an earlier call
        };
        self.shared.permits.close();
        drop(all);
        let slots = std::mem::take(&mut *crate::sync::lock(&self.shared.idle));
        for mut slot in slots {
            if slot.in_transaction {
                let _ = sqlx::query("ROLLBACK").execute(&mut slot.conn).await;
            }
            let _ = slot.conn.close().await;
        }
    }
}

/// One connection of a [`SqliteDb`], returned to it when dropped.
pub struct SqliteConn {
    slot: Option<Slot>,
    shared: Arc<Shared>,
    // Dropped after `Drop::drop` has put the connection back, so the next caller finds it.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl SqliteConn {
    fn slot(&self) -> &Slot {
        self.slot.as_ref().expect("a connection is held until drop")
    }

    fn slot_mut(&mut self) -> &mut Slot {
        self.slot.as_mut().expect("a connection is held until drop")
    }

    /// Ends the transaction open on this connection, if any. A caller cancelled just before or
    /// after its `BEGIN` ran leaves the mark without a transaction: SQLite's "no transaction is
    /// active" then says there is nothing to undo.
    async fn rollback(&mut self) -> Result<(), sqlx::Error> {
        match sqlx::query("ROLLBACK").execute(&mut **self).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.message().contains("no transaction is active") => {}
            Err(e) => return Err(e),
        }
        self.slot_mut().in_transaction = false;
        Ok(())
    }
}

impl Deref for SqliteConn {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.slot().conn
    }
}

impl DerefMut for SqliteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.slot_mut().conn
    }
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            crate::sync::lock(&self.shared.idle).push(slot);
        }
    }
}

/// A transaction on a connection of a [`SqliteDb`]; it derefs to the connection.
pub struct SqliteTx {
    conn: Option<SqliteConn>,
}

impl SqliteTx {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let mut conn = self
            .conn
            .take()
            .expect("a transaction holds its connection until it ends");
        if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
            // A COMMIT SQLite refused (busy, a deferred constraint) leaves the transaction open:
            // undone now, so that its lock is not kept until the connection's next use.
            let _ = conn.rollback().await;
            return Err(e);
        }
        conn.slot_mut().in_transaction = false;
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let mut conn = self
            .conn
            .take()
            .expect("a transaction holds its connection until it ends");
        conn.rollback().await
    }

    /// Rolls back on a task of its own, holding the connection (and `keep`, the writer's turn)
    /// until it is done, so that nobody else sees the transaction's writes or waits on its lock.
    /// Without a runtime, the connection goes back marked and its next user rolls it back.
    pub(crate) fn roll_back_in_background<T: Send + 'static>(&mut self, keep: T) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !conn.slot().in_transaction {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = conn.rollback().await;
                drop(keep);
            });
        }
    }
}

impl Deref for SqliteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn
            .as_ref()
            .expect("a transaction holds its connection until it ends")
    }
}

impl DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("a transaction holds its connection until it ends")
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        self.roll_back_in_background(());
    }
}

/// Statements run on `&db` as on a pool: each on a connection taken for it alone.
impl<'p> Executor<'p> for &'_ SqliteDb {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<sqlx::Either<sqlx::sqlite::SqliteQueryResult, sqlx::sqlite::SqliteRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + sqlx::Execute<'q, Sqlite>,
    {
        let db = self.clone();
        // The rows are gathered while the connection is held, then handed on: a stream that kept
        // the connection would have to borrow from itself. Every caller here collects them anyway.
        Box::pin(
            futures::stream::once(async move {
                match db.acquire().await {
                    Ok(mut conn) => {
                        let all: Vec<_> = conn.fetch_many(query).collect().await;
                        futures::stream::iter(all)
                    }
                    Err(e) => futures::stream::iter(vec![Err(e)]),
                }
            })
            .flatten(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<sqlx::sqlite::SqliteRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + sqlx::Execute<'q, Sqlite>,
    {
        let db = self.clone();
        Box::pin(async move { db.acquire().await?.fetch_optional(query).await })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [sqlx::sqlite::SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<sqlx::sqlite::SqliteStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        let db = self.clone();
        Box::pin(async move { db.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e>(self, sql: sqlx::SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Sqlite>, sqlx::Error>>
    where
        'p: 'e,
    {
        let db = self.clone();
        Box::pin(async move { db.acquire().await?.describe(sql).await })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    async fn open(dir: &tempfile::TempDir, connections: u32) -> SqliteDb {
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .expect("url")
            .create_if_missing(true)
            .foreign_keys(true);
        let db = SqliteDb::open(&options, connections).await.expect("open");
        sqlx::query("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY)")
            .execute(&db)
            .await
            .expect("table");
        db
    }

    async fn count(db: &SqliteDb) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(db)
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn a_connection_serves_one_caller_at_a_time_and_comes_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open(&dir, 1).await;
        let held = db.acquire().await.expect("first");
        assert_eq!(db.num_idle(), 0);
        let waiting = tokio::spawn({
            let db = db.clone();
            async move { db.acquire().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second caller waits for the one connection");
        drop(held);
        waiting.await.expect("task").expect("second");
        assert_eq!(db.num_idle(), 1);
        db.close().await;
    }

    #[tokio::test]
    async fn a_transaction_dropped_open_is_undone_before_the_next_use() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open(&dir, 1).await;
        let mut tx = db.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        sqlx::query("INSERT INTO t (n) VALUES (1)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        drop(tx);
        // The next statement runs outside any transaction: the insert is gone and a new
        // transaction can begin.
        assert_eq!(count(&db).await, 0);
        let mut tx = db.begin().await.expect("begin again");
        sqlx::query("INSERT INTO t (n) VALUES (2)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        assert_eq!(count(&db).await, 1);
        db.close().await;
    }

    #[tokio::test]
    async fn a_mark_without_a_transaction_does_not_fail_the_next_caller() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open(&dir, 1).await;
        // As a caller cancelled before its BEGIN reached SQLite leaves it.
        let mut conn = db.acquire().await.expect("acquire");
        conn.slot_mut().in_transaction = true;
        drop(conn);
        assert_eq!(count(&db).await, 0);
        db.close().await;
    }

    #[tokio::test]
    async fn a_refused_commit_leaves_no_transaction_behind() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open(&dir, 2).await;
        let mut tx = db.begin().await.expect("begin");
        sqlx::query("PRAGMA defer_foreign_keys = ON")
            .execute(&mut *tx)
            .await
            .expect("defer");
        sqlx::query("CREATE TABLE child (parent INTEGER REFERENCES t (n))")
            .execute(&mut *tx)
            .await
            .expect("child");
        sqlx::query("INSERT INTO child (parent) VALUES (9)")
            .execute(&mut *tx)
            .await
            .expect("orphan");
        tx.commit()
            .await
            .expect_err("a deferred foreign key refuses the commit");
        // The other connection can take the write lock at once: nothing holds it.
        let mut other = db.begin_with("BEGIN IMMEDIATE").await.expect("write lock free");
        sqlx::query("INSERT INTO t (n) VALUES (1)")
            .execute(&mut *other)
            .await
            .expect("insert");
        other.commit().await.expect("commit");
        let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'child'")
            .fetch_one(&db)
            .await
            .expect("tables");
        assert_eq!(tables, 0, "the refused transaction was rolled back");
        db.close().await;
    }

    #[tokio::test]
    async fn close_waits_for_connections_in_use_then_refuses_callers() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open(&dir, 2).await;
        let held = db.acquire().await.expect("acquire");
        let closing = tokio::spawn({
            let db = db.clone();
            async move { db.close().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!closing.is_finished(), "close waits for the connection in use");
        drop(held);
        closing.await.expect("closed");
        assert!(db.is_closed());
        assert!(matches!(db.acquire().await, Err(sqlx::Error::PoolClosed)));
    }
}
