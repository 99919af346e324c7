//! The SQL implementation of [`IdentityStore`], written once and instantiated for SQLite and
//! PostgreSQL. Every statement is parameterised and portable between the two (`$n` placeholders,
//! `RETURNING`, timestamps passed in from Rust rather than `now()`).

use platform::db::RowsAffected;
use platform::events::{Event, OutboxConnection};
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use contracts::kernel::{Country, PostalAddress};

use super::{
    AddressRecord, AuditEvent, AuditFilter, IdentityStore, LoginAttempt, LoginFailures, LoginOutcome, NewRefreshToken,
    RefreshToken, Session, SigningKeyRecord, StoreError, StoreResult, ThrottleRule, User, UserFilter,
};
use crate::domain::{FailureWindow, Role, TokenPurpose, UserId, UserStatus};

pub struct SqlStore<DB: platform::db::Backend> {
    pool: DB::Pool,
}

impl<DB: platform::db::Backend> SqlStore<DB> {
    pub fn new(pool: DB::Pool) -> Self {
        Self { pool }
    }
}

impl<DB> SqlStore<DB>
where
    DB: platform::db::Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c DB::Pool: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> OffsetDateTime: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<OffsetDateTime>: Decode<'q, DB>,
    for<'q> &'q str: ColumnIndex<DB::Row>,
{
    /// Sets one text column of a live (not deleted) user. `column` is one of this module's
    /// literals, never input.
    async fn set_user_column(
        &self,
        column: &'static str,
        value: &str,
        id: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        sqlx::query_as::<_, UserRow>(sql(format!(
            "UPDATE users SET {column} = $2, updated_at = $3, version = version + 1 WHERE id = $1 AND status <> 'deleted'
             RETURNING {USER_COLUMNS}"
        )))
        .bind(id.0)
        .bind(value)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?
        .try_into()
    }
}

#[derive(FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    password_hash: String,
    role: String,
    status: String,
    email_verified_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, Self::Error> {
        Ok(User {
            id: UserId(r.id),
            email: r.email,
            name: r.name,
            password_hash: r.password_hash,
            role: r.role.parse::<Role>().map_err(|e| StoreError::Corrupt(e.into()))?,
            status: r.status.parse::<UserStatus>().map_err(StoreError::Corrupt)?,
            email_verified_at: r.email_verified_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        })
    }
}

const ADDRESS_COLUMNS: &str =
    "id, user_id, label, name, line1, line2, city, postal_code, country, phone, is_default, created_at, updated_at";

#[derive(FromRow)]
struct AddressRow {
    id: Uuid,
    user_id: Uuid,
    label: Option<String>,
    name: String,
    line1: String,
    line2: Option<String>,
    city: String,
    postal_code: String,
    country: String,
    phone: Option<String>,
    is_default: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<AddressRow> for AddressRecord {
    type Error = StoreError;
    fn try_from(r: AddressRow) -> Result<Self, Self::Error> {
        Ok(AddressRecord {
            id: r.id,
            user_id: UserId(r.user_id),
            label: r.label,
            address: PostalAddress {
                name: r.name,
                line1: r.line1,
                line2: r.line2,
                city: r.city,
                postal_code: r.postal_code,
                country: Country::parse(&r.country)
                    .map_err(|e| StoreError::Corrupt(format!("address country: {e}")))?,
                phone: r.phone,
            },
            is_default: r.is_default,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Locks a live user's row for the rest of `tx` (`NotFound` for an unknown or deleted user).
async fn lock_live_user<DB>(tx: &mut platform::db::Write<DB>, user: UserId) -> StoreResult<()>
where
    DB: platform::db::Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let touched = sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1 AND status <> 'deleted'")
        .bind(user.0)
        .execute(&mut **tx)
        .await?;
    if touched.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[derive(FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    user_agent: String,
    ip: String,
    created_at: OffsetDateTime,
    last_seen_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            id: r.id,
            user_id: UserId(r.user_id),
            user_agent: r.user_agent,
            ip: r.ip,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(FromRow)]
struct RefreshRow {
    token_expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
    #[sqlx(flatten)]
    session: SessionRow,
}

#[derive(FromRow)]
struct AuditRow {
    id: Uuid,
    occurred_at: OffsetDateTime,
    kind: String,
    user_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    subject_email: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: Option<String>,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            id: r.id,
            occurred_at: r.occurred_at,
            kind: r.kind,
            user_id: r.user_id,
            actor_id: r.actor_id,
            subject_email: r.subject_email,
            ip: r.ip,
            user_agent: r.user_agent,
            detail: r.detail,
        }
    }
}

#[derive(FromRow)]
struct FailureRow {
    failures: i64,
    oldest: Option<OffsetDateTime>,
}

impl From<FailureRow> for FailureWindow {
    fn from(r: FailureRow) -> Self {
        FailureWindow {
            failures: u32::try_from(r.failures).unwrap_or(u32::MAX),
            oldest: r.oldest,
        }
    }
}

#[derive(FromRow)]
struct SigningKeyRow {
    kid: String,
    private_key: Vec<u8>,
    public_key: Vec<u8>,
    created_at: OffsetDateTime,
    retired_at: Option<OffsetDateTime>,
}

const USER_COLUMNS: &str =
    "id, email, name, password_hash, role, status, email_verified_at, created_at, updated_at, version";
const SESSION_COLUMNS: &str =
    "s.id, s.user_id, s.user_agent, s.ip, s.created_at, s.last_seen_at, s.expires_at, s.revoked_at";

/// Escapes `%`, `_` and `\` so user input is matched literally by `LIKE ... ESCAPE '\'`.
fn like_pattern(fragment: &str) -> String {
    let mut escaped = String::with_capacity(fragment.len() + 2);
    escaped.push('%');
    for c in fragment.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

fn map_user_write(e: sqlx::Error) -> StoreError {
    if platform::db::is_unique_violation(&e, "email") {
        StoreError::DuplicateEmail
    } else {
        StoreError::Db(e)
    }
}

/// Builds a statement from fixed fragments of this module (never from input), so it is safe.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

#[async_trait::async_trait]
impl<DB> IdentityStore for SqlStore<DB>
where
    DB: platform::db::Backend,
    DB::Connection: OutboxConnection,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c DB::Pool: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> OffsetDateTime: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<OffsetDateTime>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    DB::QueryResult: RowsAffected,
{
    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "insert_user"))]
    async fn insert_user(&self, u: &User, events: &[Event]) -> StoreResult<()> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role, status, email_verified_at, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(u.id.0)
        .bind(u.email.as_str())
        .bind(u.name.as_str())
        .bind(u.password_hash.as_str())
        .bind(u.role.as_str())
        .bind(u.status.as_str())
        .bind(u.email_verified_at)
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(u.version)
        .execute(&mut *tx)
        .await
        .map_err(map_user_write)?;
        platform::events::enqueue_all(&mut *tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "user_by_id"))]
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(sql(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .map(User::try_from)
            .transpose()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "user_by_email"))]
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(sql(format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1")))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
            .map(User::try_from)
            .transpose()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "user_in_live_session"))]
    async fn user_in_live_session(
        &self,
        id: UserId,
        session_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(
            "SELECT u.id, u.email, u.name, u.password_hash, u.role, u.status, u.email_verified_at,
                    u.created_at, u.updated_at, u.version
             FROM users u JOIN sessions s ON s.user_id = u.id
             WHERE u.id = $1 AND s.id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3 AND u.status = 'active'",
        )
        .bind(id.0)
        .bind(session_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .map(User::try_from)
        .transpose()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "update_name"))]
    async fn update_name(
        &self,
        id: UserId,
        name: &str,
        expected_version: Option<i64>,
        now: OffsetDateTime,
        events: &[Event],
    ) -> StoreResult<User> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        let row = sqlx::query_as::<_, UserRow>(sql(format!(
            "UPDATE users SET name = $2, updated_at = $3, version = version + 1
             WHERE id = $1 AND status = 'active' AND ($4 IS NULL OR version = $4)
             RETURNING {USER_COLUMNS}"
        )))
        .bind(id.0)
        .bind(name)
        .bind(now)
        .bind(expected_version)
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_some() {
            platform::events::enqueue_all(&mut *tx, events).await?;
        }
        tx.commit().await?;
        match row {
            Some(row) => row.try_into(),
            None if expected_version.is_some() && self.user_by_id(id).await?.is_some() => {
                Err(StoreError::VersionMismatch)
            }
            None => Err(StoreError::NotFound),
        }
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "set_password_hash"))]
    async fn set_password_hash(&self, id: UserId, hash: &str, now: OffsetDateTime) -> StoreResult<()> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3, version = version + 1 WHERE id = $1")
                .bind(id.0)
                .bind(hash)
                .bind(now)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "mark_email_verified"))]
    async fn mark_email_verified(&self, id: UserId, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(
            "UPDATE users SET email_verified_at = $2, updated_at = $2, version = version + 1
             WHERE id = $1 AND email_verified_at IS NULL",
        )
        .bind(id.0)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "set_role"))]
    async fn set_role(&self, id: UserId, role: Role, now: OffsetDateTime) -> StoreResult<User> {
        self.set_user_column("role", role.as_str(), id, now).await
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "set_status"))]
    async fn set_status(&self, id: UserId, status: UserStatus, now: OffsetDateTime) -> StoreResult<User> {
        self.set_user_column("status", status.as_str(), id, now).await
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "addresses"))]
    async fn addresses(&self, user: UserId) -> StoreResult<Vec<AddressRecord>> {
        let rows = sqlx::query_as::<_, AddressRow>(sql(format!(
            "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE user_id = $1
             ORDER BY CASE WHEN is_default THEN 0 ELSE 1 END, created_at, id"
        )))
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(AddressRecord::try_from).collect()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "add_address"))]
    async fn add_address(&self, r: &AddressRecord, limit: usize) -> StoreResult<AddressRecord> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        // Touching the user's row first makes two additions for one user take turns (row lock on
        // PostgreSQL, the write lock on SQLite), so the count below cannot be stale.
        lock_live_user(&mut tx, r.user_id).await?;
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM addresses WHERE user_id = $1")
            .bind(r.user_id.0)
            .fetch_one(&mut *tx)
            .await?;
        let held = usize::try_from(held).unwrap_or(usize::MAX);
        if held >= limit {
            return Err(StoreError::AddressBookFull(held));
        }
        let is_default = r.is_default || held == 0;
        if is_default {
            sqlx::query("UPDATE addresses SET is_default = FALSE, updated_at = $2 WHERE user_id = $1 AND is_default")
                .bind(r.user_id.0)
                .bind(r.created_at)
                .execute(&mut *tx)
                .await?;
        }
        let a = &r.address;
        let row = sqlx::query_as::<_, AddressRow>(sql(format!(
            "INSERT INTO addresses (id, user_id, label, name, line1, line2, city, postal_code, country, phone,
                                    is_default, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
             RETURNING {ADDRESS_COLUMNS}"
        )))
        .bind(r.id)
        .bind(r.user_id.0)
        .bind(r.label.as_deref())
        .bind(a.name.as_str())
        .bind(a.line1.as_str())
        .bind(a.line2.as_deref())
        .bind(a.city.as_str())
        .bind(a.postal_code.as_str())
        .bind(a.country.as_str())
        .bind(a.phone.as_deref())
        .bind(is_default)
        .bind(r.created_at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        row.try_into()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "update_address"))]
    async fn update_address(
        &self,
        user: UserId,
        id: Uuid,
        label: Option<&str>,
        a: &PostalAddress,
        now: OffsetDateTime,
    ) -> StoreResult<AddressRecord> {
        sqlx::query_as::<_, AddressRow>(sql(format!(
            "UPDATE addresses SET label = $3, name = $4, line1 = $5, line2 = $6, city = $7, postal_code = $8,
                                  country = $9, phone = $10, updated_at = $11
             WHERE user_id = $1 AND id = $2
             RETURNING {ADDRESS_COLUMNS}"
        )))
        .bind(user.0)
        .bind(id)
        .bind(label)
        .bind(a.name.as_str())
        .bind(a.line1.as_str())
        .bind(a.line2.as_deref())
        .bind(a.city.as_str())
        .bind(a.postal_code.as_str())
        .bind(a.country.as_str())
        .bind(a.phone.as_deref())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?
        .try_into()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "make_default_address"))]
    async fn make_default_address(&self, user: UserId, id: Uuid, now: OffsetDateTime) -> StoreResult<AddressRecord> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        // Changes to one user's book take turns: two concurrent moves of the mark would each
        // clear only the default they saw and then both set theirs (a unique violation).
        lock_live_user(&mut tx, user).await?;
        // Two statements, old mark off then new mark on: the unique index is checked row by row,
        // so one UPDATE swapping both could trip it on PostgreSQL.
        sqlx::query(
            "UPDATE addresses SET is_default = FALSE, updated_at = $3 WHERE user_id = $1 AND is_default AND id <> $2",
        )
        .bind(user.0)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query_as::<_, AddressRow>(sql(format!(
            "UPDATE addresses SET is_default = TRUE, updated_at = $3 WHERE user_id = $1 AND id = $2
             RETURNING {ADDRESS_COLUMNS}"
        )))
        .bind(user.0)
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        row.try_into()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "remove_address"))]
    async fn remove_address(&self, user: UserId, id: Uuid, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        // Taking turns with other changes to the book, so the mark passed on stays unique.
        lock_live_user(&mut tx, user).await?;
        let was_default: bool =
            sqlx::query_scalar("DELETE FROM addresses WHERE user_id = $1 AND id = $2 RETURNING is_default")
                .bind(user.0)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        if was_default {
            sqlx::query(
                "UPDATE addresses SET is_default = TRUE, updated_at = $2
                 WHERE id = (SELECT id FROM addresses WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1)",
            )
            .bind(user.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "list_users"))]
    async fn list_users(&self, f: &UserFilter, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<User>> {
        // One placeholder per id ($6, $7, ...): the statement's shape depends on the count only.
        let ids = f.ids.as_deref().unwrap_or_default();
        let in_ids = match &f.ids {
            None => String::new(),
            Some(_) if ids.is_empty() => " AND 1 = 0".to_owned(),
            Some(_) => format!(" AND id IN ({})", platform::db::placeholder_list_from(6, ids.len())),
        };
        let mut query = sqlx::query_as::<_, UserRow>(sql(format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE ($1 IS NULL OR email LIKE $1 ESCAPE '\\')
               AND ($2 IS NULL OR role = $2)
               AND ($3 IS NULL OR status = $3)
               AND ($4 IS NULL OR id > $4){in_ids}
             ORDER BY id
             LIMIT $5"
        )))
        .bind(f.email_contains.as_deref().map(|e| like_pattern(&e.to_lowercase())))
        .bind(f.role.map(Role::as_str))
        .bind(f.status.map(UserStatus::as_str))
        .bind(after)
        .bind(i64::from(limit));
        for id in ids {
            query = query.bind(*id);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(User::try_from)
            .collect()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "create_session"))]
    async fn create_session(&self, s: &Session, token: &NewRefreshToken) -> StoreResult<()> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, user_agent, ip, created_at, last_seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.id)
        .bind(s.user_id.0)
        .bind(s.user_agent.as_str())
        .bind(s.ip.as_str())
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await?;
        insert_refresh::<DB>(&mut tx, token, s.id).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "refresh_token"))]
    async fn refresh_token(&self, digest: &[u8; 32]) -> StoreResult<Option<RefreshToken>> {
        let row = sqlx::query_as::<_, RefreshRow>(sql(format!(
            "SELECT t.expires_at AS token_expires_at, t.used_at, {SESSION_COLUMNS}
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = $1"
        )))
        .bind(&digest[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| RefreshToken {
            expires_at: r.token_expires_at,
            used_at: r.used_at,
            session: r.session.into(),
        }))
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "rotate_refresh_token"))]
    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        new: &NewRefreshToken,
        session_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        let claimed = sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
            .bind(&old[..])
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if claimed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_refresh::<DB>(&mut tx, new, session_id).await?;
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
            .bind(session_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "session"))]
    async fn session(&self, id: Uuid) -> StoreResult<Option<Session>> {
        Ok(
            sqlx::query_as::<_, SessionRow>(sql(format!("SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(Session::from),
        )
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "live_sessions"))]
    async fn live_sessions(&self, user: UserId, now: OffsetDateTime) -> StoreResult<Vec<Session>> {
        Ok(sqlx::query_as::<_, SessionRow>(sql(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s
             WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
             ORDER BY s.last_seen_at DESC"
        )))
        .bind(user.0)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Session::from)
        .collect())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "revoke_session"))]
    async fn revoke_session(&self, id: Uuid, reason: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "revoke_sessions_of"))]
    async fn revoke_sessions_of(
        &self,
        user: UserId,
        keep: Option<Uuid>,
        reason: &str,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3
             WHERE user_id = $1 AND revoked_at IS NULL AND ($4 IS NULL OR id <> $4)",
        )
        .bind(user.0)
        .bind(now)
        .bind(reason)
        .bind(keep)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "insert_one_time_token"))]
    async fn insert_one_time_token(
        &self,
        digest: &[u8; 32],
        user: UserId,
        purpose: TokenPurpose,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        events: &[Event],
    ) -> StoreResult<()> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        sqlx::query(
            "INSERT INTO one_time_tokens (token_hash, user_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&digest[..])
        .bind(user.0)
        .bind(purpose.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        platform::events::enqueue_all(&mut *tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "consume_one_time_token"))]
    async fn consume_one_time_token(
        &self,
        digest: &[u8; 32],
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> StoreResult<Option<UserId>> {
        let row: Option<(Uuid,)> = sqlx::query_as(
            "UPDATE one_time_tokens SET used_at = $3
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
             RETURNING user_id",
        )
        .bind(&digest[..])
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id,)| UserId(id)))
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "burn_one_time_tokens"))]
    async fn burn_one_time_tokens(&self, user: UserId, purpose: TokenPurpose, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("UPDATE one_time_tokens SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
            .bind(user.0)
            .bind(purpose.as_str())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "enqueue_events"))]
    async fn enqueue_events(&self, events: &[Event]) -> StoreResult<()> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        platform::events::enqueue_all(&mut *tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "record_audit"))]
    async fn record_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, occurred_at, kind, user_id, actor_id, subject_email, ip, user_agent, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.id)
        .bind(e.occurred_at)
        .bind(e.kind.as_str())
        .bind(e.user_id)
        .bind(e.actor_id)
        .bind(e.subject_email.as_deref())
        .bind(e.ip.as_deref())
        .bind(e.user_agent.as_deref())
        .bind(e.detail.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "reserve_login_attempt"))]
    async fn reserve_login_attempt(
        &self,
        attempt: &LoginAttempt,
        since: OffsetDateTime,
        rule: ThrottleRule<'_>,
    ) -> StoreResult<Option<crate::domain::LoginThrottle>> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        // Writing the keys' lock rows first makes concurrent reservations for the same account or
        // address wait for this one to commit (row lock on PostgreSQL, the write lock on SQLite).
        // Sorted, so two reservations never take the same two locks in opposite order.
        let mut keys = [format!("account:{}", attempt.email), format!("ip:{}", attempt.ip)];
        keys.sort();
        for key in &keys {
            sqlx::query(
                "INSERT INTO login_throttle_locks (key, touched_at) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET touched_at = excluded.touched_at",
            )
            .bind(key.as_str())
            .bind(attempt.at)
            .execute(&mut *tx)
            .await?;
        }
        // A successful login clears the account's count; the address's count only ages out.
        let account: FailureRow = sqlx::query_as(
            "SELECT COUNT(*) AS failures, MIN(attempted_at) AS oldest FROM login_attempts
             WHERE email = $1 AND outcome IN ('pending', 'failed') AND attempted_at >= $2
               AND attempted_at > COALESCE(
                   (SELECT MAX(attempted_at) FROM login_attempts WHERE email = $1 AND outcome = 'succeeded'),
                   $2)",
        )
        .bind(attempt.email.as_str())
        .bind(since)
        .fetch_one(&mut *tx)
        .await?;
        let by_ip: FailureRow = sqlx::query_as(
            "SELECT COUNT(*) AS failures, MIN(attempted_at) AS oldest FROM login_attempts
             WHERE ip = $1 AND outcome IN ('pending', 'failed') AND attempted_at >= $2",
        )
        .bind(attempt.ip.as_str())
        .bind(since)
        .fetch_one(&mut *tx)
        .await?;
        let seen = LoginFailures {
            account: account.into(),
            ip: by_ip.into(),
        };
        if let Some(wait) = rule(seen) {
            tx.rollback().await?;
            return Ok(Some(wait));
        }
        sqlx::query(
            "INSERT INTO login_attempts (id, email, ip, attempted_at, outcome) VALUES ($1, $2, $3, $4, 'pending')",
        )
        .bind(attempt.id)
        .bind(attempt.email.as_str())
        .bind(attempt.ip.as_str())
        .bind(attempt.at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(None)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "settle_login_attempt"))]
    async fn settle_login_attempt(&self, id: Uuid, outcome: LoginOutcome) -> StoreResult<()> {
        sqlx::query("UPDATE login_attempts SET outcome = $2 WHERE id = $1")
            .bind(id)
            .bind(outcome.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "prune_login_attempts"))]
    async fn prune_login_attempts(&self, cutoff: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM login_attempts WHERE attempted_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM login_throttle_locks WHERE touched_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "list_audit"))]
    async fn list_audit(&self, f: &AuditFilter, before: Option<Uuid>, limit: u32) -> StoreResult<Vec<AuditEvent>> {
        Ok(sqlx::query_as::<_, AuditRow>(
            "SELECT id, occurred_at, kind, user_id, actor_id, subject_email, ip, user_agent, detail FROM audit_events
             WHERE ($1 IS NULL OR kind = $1)
               AND ($2 IS NULL OR user_id = $2)
               AND ($3 IS NULL OR subject_email = $3)
               AND ($4 IS NULL OR ip = $4)
               AND ($5 IS NULL OR occurred_at >= $5)
               AND ($6 IS NULL OR occurred_at < $6)
               AND ($7 IS NULL OR id < $7)
             ORDER BY id DESC
             LIMIT $8",
        )
        .bind(f.kind.as_deref())
        .bind(f.user_id)
        .bind(f.email.as_deref())
        .bind(f.ip.as_deref())
        .bind(f.since)
        .bind(f.until)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(AuditEvent::from)
        .collect())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "signing_keys"))]
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        Ok(sqlx::query_as::<_, SigningKeyRow>(
            "SELECT kid, private_key, public_key, created_at, retired_at FROM signing_keys ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| SigningKeyRecord {
            kid: r.kid,
            private_key: r.private_key,
            public_key: r.public_key,
            created_at: r.created_at,
            retired_at: r.retired_at,
        })
        .collect())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "activate_signing_key"))]
    async fn activate_signing_key(&self, key: &SigningKeyRecord, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = platform::db::begin::<DB>(&self.pool, None).await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ($1, $2, $3, $4)")
            .bind(key.kid.as_str())
            .bind(key.private_key.as_slice())
            .bind(key.public_key.as_slice())
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "prune_signing_keys"))]
    async fn prune_signing_keys(&self, cutoff: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

async fn insert_refresh<DB>(
    tx: &mut platform::db::Write<DB>,
    token: &NewRefreshToken,
    session_id: Uuid,
) -> Result<(), sqlx::Error>
where
    DB: platform::db::Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> OffsetDateTime: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(&token.digest[..])
        .bind(session_id)
        .bind(token.issued_at)
        .bind(token.expires_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_patterns_match_input_literally() {
        assert_eq!(like_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
