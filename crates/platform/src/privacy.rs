//! How a context that holds personal data answers identity's erasure and export requests
//! (GDPR articles 15, 17 and 20): the context says what it holds and how to erase it
//! ([`PersonalData`]); [`answers`] subscribes it, does the work, forgets the context's own copies
//! of events about the person, and reports back on the bus (`<context>.privacy.erased` /
//! `.exported`), so identity knows when every context finished.

use std::marker::PhantomData;
use std::sync::Arc;

use contracts::events::Event as _;
use contracts::events::identity::{ExportRequested, UserErased};
use contracts::events::privacy::{ErasureStep, ExportPart};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::context::Consumer;
use crate::db::Db;
use crate::events::{Event, EventHandler, HandlerError, Outbox, OutboxConnection};

/// What one context holds about a person, and how it lets go of it.
#[async_trait::async_trait]
pub trait PersonalData: Send + Sync + 'static {
    /// Erases or pseudonymises everything this context holds about `user`. Runs again when the
    /// event is redelivered, so it must be idempotent. Answers a one-line summary for the
    /// erasure report ("1 cart deleted").
    async fn erase(&self, user: Uuid, at: OffsetDateTime) -> anyhow::Result<String>;
    /// Everything this context holds about `user`, as one JSON document (docs/privacy.md).
    async fn export(&self, user: Uuid) -> anyhow::Result<serde_json::Value>;
}

/// The consumer that answers erasures and exports for `context` with `data`. `Erased` and
/// `Exported` are the context's own answer types (e.g. `CartErased`, `CartExported`).
pub fn answers<Erased, Exported>(
    context: &'static str,
    db: &Db,
    outbox: Outbox,
    data: Arc<dyn PersonalData>,
) -> Consumer
where
    Erased: contracts::events::Event + From<ErasureStep> + Send + Sync + 'static,
    Exported: contracts::events::Event + From<ExportPart> + Send + Sync + 'static,
{
    Consumer::once(
        "privacy",
        vec![UserErased::TYPE, ExportRequested::TYPE],
        Arc::new(Answers::<Erased, Exported> {
            context,
            db: db.clone(),
            outbox,
            data,
            types: PhantomData,
        }),
    )
}

struct Answers<Erased, Exported> {
    context: &'static str,
    db: Db,
    outbox: Outbox,
    data: Arc<dyn PersonalData>,
    types: PhantomData<fn() -> (Erased, Exported)>,
}

#[async_trait::async_trait]
impl<Erased, Exported> EventHandler for Answers<Erased, Exported>
where
    Erased: contracts::events::Event + From<ErasureStep> + Send + Sync + 'static,
    Exported: contracts::events::Event + From<ExportPart> + Send + Sync + 'static,
{
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let answer = if let Some(erased) = event.payload::<UserErased>() {
            let erased = erased.map_err(|e| HandlerError::permanent(format!("undecodable erasure: {e}")))?;
            let user = erased.user_id;
            let mut summary = self
                .data
                .erase(user, erased.erased_at)
                .await
                .map_err(|e| HandlerError::retryable(format!("erasing {user}: {e:#}")))?;
            let forgotten = forget_events_about(&self.db, user).await?;
            if forgotten > 0 {
                summary = format!("{summary}; {forgotten} stored events about the user deleted");
            }
            tracing::info!(context = self.context, %user, summary, "personal data erased");
            let step = ErasureStep {
                user_id: user,
                context: self.context.to_owned(),
                completed_at: crate::clock::now(),
                summary,
            };
            Event::of(user.to_string(), &Erased::from(step))
        } else if let Some(requested) = event.payload::<ExportRequested>() {
            let requested = requested.map_err(|e| HandlerError::permanent(format!("undecodable export: {e}")))?;
            let user = requested.user_id;
            let data = self
                .data
                .export(user)
                .await
                .map_err(|e| HandlerError::retryable(format!("exporting {user}: {e:#}")))?;
            tracing::info!(context = self.context, %user, export = %requested.export_id, "export part written");
            let part = ExportPart {
                export_id: requested.export_id,
                user_id: user,
                context: self.context.to_owned(),
                data,
            };
            Event::of(user.to_string(), &Exported::from(part))
        } else {
            return Ok(());
        };
        publish(&self.db, &answer).await?;
        self.outbox.notify();
        Ok(())
    }
}

/// Puts one event in the outbox, outside any other transaction (the answer follows work that
/// is idempotent, so a crash in between repeats the work and then answers).
async fn publish(db: &Db, event: &Event) -> Result<(), sqlx::Error> {
    crate::with_pool!(db, |pool| {
        let mut conn = pool.acquire().await?;
        crate::events::enqueue(&mut *conn, event).await
    })
}

/// Deletes this database's copies of published events and dead letters that name `user`: the
/// outbox keeps published events for a week and dead letters until replayed, and either may
/// carry the person's name, address or e-mail. Events not yet published are left for the relay.
pub async fn forget_events_about(db: &Db, user: Uuid) -> Result<u64, sqlx::Error> {
    crate::with_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let forgotten = forget_events_about_in(&mut *tx, user).await?;
        tx.commit().await?;
        Ok(forgotten)
    })
}

/// [`forget_events_about`] on a connection the caller holds, so a context can forget inside the
/// transaction that erases the person (identity does).
pub async fn forget_events_about_in<C: OutboxConnection + ?Sized>(
    conn: &mut C,
    user: Uuid,
) -> Result<u64, sqlx::Error> {
    conn.delete_stored_events_like(&format!("%{user}%")).await
}
