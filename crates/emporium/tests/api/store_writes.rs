//! `StorePool::write`, the write transaction every SQL store opens, on both backends: it keeps
//! what it committed, drops what it rolled back, and one that is dropped open (an error path, or
//! a request cancelled mid-statement) is rolled back and frees its connection and the writer's
//! turn, so the next write goes ahead. On SQLite the pool has the one connection the app gives a
//! context, so a connection that never came back would stall the next write here.

use std::time::Duration;

use platform::db::{Db, StorePool};
use sqlx::{Executor, IntoArguments};
use test_support::{Backend, TestDb};

test_support::on_both_backends!(writes_end_as_told_and_abandoned_ones_roll_back);

async fn writes_end_as_told_and_abandoned_ones_roll_back(backend: Backend) {
    let Some(test) = TestDb::open(backend, "scratch").await else {
        return;
    };
    match &test.db {
        Db::Sqlite(pool) => exercise(StorePool::sqlite(pool.clone())).await,
        Db::Postgres(pool) => exercise(StorePool::postgres(pool.clone())).await,
    }
    test.db.close().await;
}

const WAIT: Duration = Duration::from_secs(5);

/// How a write of one row ends.
#[derive(Clone, Copy)]
enum End {
    Commit,
    Rollback,
    /// Dropped open, as on an error path.
    Dropped,
    /// A statement fails (PostgreSQL then refuses everything until the rollback), then dropped.
    FailedThenDropped,
    /// The request is cancelled while its transaction is open.
    Cancelled,
}

async fn exercise<DB>(db: StorePool<DB>)
where
    DB: platform::db::Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c DB::Pool: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    sqlx::query("CREATE TABLE marks (n BIGINT PRIMARY KEY)")
        .execute(db.pool())
        .await
        .expect("create table");
    for (n, end) in [
        (1, End::Commit),
        (2, End::Rollback),
        (3, End::Dropped),
        (1, End::FailedThenDropped),
        (5, End::Cancelled),
        (4, End::Commit),
    ] {
        match end {
            End::Cancelled => {
                let cancelled = tokio::time::timeout(Duration::from_millis(50), async {
                    write_one(&db, n, end).await;
                    unreachable!("a cancelled write never ends");
                })
                .await;
                assert!(cancelled.is_err(), "the write was cancelled");
            }
            _ => write_one(&db, n, end).await,
        }
    }
    let kept: Vec<(i64,)> = sqlx::query_as("SELECT n FROM marks ORDER BY n")
        .fetch_all(db.pool())
        .await
        .expect("read back");
    assert_eq!(kept, vec![(1,), (4,)], "only the committed writes are kept");

    // Nothing is left open on a pooled connection: a plain write outside any transaction is
    // seen at once by the next transaction.
    sqlx::query("INSERT INTO marks (n) VALUES (6)")
        .execute(db.pool())
        .await
        .expect("insert 6");
    let mut tx = tokio::time::timeout(WAIT, db.write())
        .await
        .expect("turn")
        .expect("begin");
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM marks")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    tx.commit().await.expect("commit");
    assert_eq!(count, 3);
}

async fn write_one<DB>(db: &StorePool<DB>, n: i64, end: End)
where
    DB: platform::db::Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    // Waiting past WAIT here means an earlier write kept the connection or the writer's turn.
    let mut tx = tokio::time::timeout(WAIT, db.write())
        .await
        .expect("the writer's turn and a connection")
        .expect("begin");
    let inserted = sqlx::query("INSERT INTO marks (n) VALUES ($1)")
        .bind(n)
        .execute(&mut *tx)
        .await;
    match end {
        End::FailedThenDropped => assert!(inserted.is_err(), "a duplicate key is refused"),
        _ => {
            inserted.expect("insert");
        }
    }
    match end {
        End::Commit => tx.commit().await.expect("commit"),
        End::Rollback => tx.rollback().await.expect("rollback"),
        End::Dropped | End::FailedThenDropped => drop(tx),
        End::Cancelled => std::future::pending().await,
    }
}
