//! What every context is made of, so the seven contexts are started, migrated and served alike:
//! the [`Context`] trait, the infrastructure a context is handed ([`ContextDeps`]), its schema
//! ([`Migrations`]), its event consumers ([`Consumer`]) and background loops ([`Worker`]), and the
//! [`Launcher`] that starts any of them the same way in every process.

mod worker;

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use sqlx::migrate::Migrator;

pub use self::worker::{Stopper, Worker};
use crate::db::{Db, DbError};
use crate::events::{Delivery, EventHandler, Subscription};
use crate::health::HealthCheck;

/// A bounded context as the process runs it. Embedded mode launches all seven in one process,
/// `serve --service <name>` one; both through [`Launcher::launch`], so they start alike.
#[async_trait::async_trait]
pub trait Context: Sized + Send + Sync + 'static {
    /// Its name: the tag of its routes and metrics, the prefix of its queues and outbox.
    const NAME: &'static str;
    /// What it is started with besides [`ContextDeps`] (its settings).
    type Config: Send + 'static;

    /// Its schema on both backends.
    fn migrations() -> &'static Migrations;

    /// Opens its store on `db` and builds its service. Subscribing its [`Context::consumers`] and
    /// spawning its [`Context::workers`] is left to the launcher.
    async fn start(db: &Db, config: Self::Config, deps: &ContextDeps) -> anyhow::Result<Self>;

    /// Its routes, tagged for metrics and able to verify access tokens.
    fn router(&self) -> Router;

    /// Offers its published API to the contexts started after it in this process
    /// ([`crate::client::Peers::offer`]), so they call it directly instead of over HTTP.
    fn offer_api(&self, _peers: &crate::client::Peers) {}

    /// The events it consumes.
    fn consumers(&self) -> Vec<Consumer> {
        Vec::new()
    }

    /// Its background loops.
    fn workers(&self) -> Vec<Worker> {
        Vec::new()
    }

    /// What readiness checks besides its database (which the process checks for every context).
    fn health_checks(&self) -> Vec<Arc<dyn HealthCheck>> {
        Vec::new()
    }
}

/// One consumer of a context: which events, handled how.
pub struct Consumer {
    /// A stable name (part of its queue name).
    pub name: &'static str,
    /// AMQP topic patterns: `*` is one word, `#` zero or more.
    pub patterns: Vec<&'static str>,
    pub handler: Arc<dyn EventHandler>,
    pub delivery: Delivery,
}

impl Consumer {
    /// Work done once per event by whichever replica of the context receives it.
    pub fn once(name: &'static str, patterns: Vec<&'static str>, handler: Arc<dyn EventHandler>) -> Self {
        Self {
            name,
            patterns,
            handler,
            delivery: Delivery::OnePerContext,
        }
    }
}

/// Starts contexts the same way in every process: migrate (when asked), start, offer its API to
/// the contexts started after it, subscribe the consumers, spawn the workers.
pub struct Launcher {
    deps: ContextDeps,
    migrate: bool,
    stopper: Stopper,
    health: Vec<Arc<dyn HealthCheck>>,
}

impl Launcher {
    /// `migrate`: apply each context's migrations before starting it (embedded mode and tests;
    /// production runs `emporium migrate`).
    pub fn new(deps: ContextDeps, migrate: bool) -> Self {
        Self {
            deps,
            migrate,
            stopper: Stopper::default(),
            health: Vec::new(),
        }
    }

    pub fn deps(&self) -> &ContextDeps {
        &self.deps
    }

    /// The verifier handed to the contexts launched from now on (identity's own keys once it
    /// started in this process, else its published JWKS).
    pub fn set_keys(&mut self, keys: crate::auth::KeySet) {
        self.deps.keys = keys;
    }

    /// Stops every worker launched so far.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// The contexts' own readiness checks, in launch order.
    pub fn health_checks(&self) -> &[Arc<dyn HealthCheck>] {
        &self.health
    }

    pub async fn launch<C: Context>(&mut self, db: &Db, config: C::Config) -> anyhow::Result<C> {
        let context = self
            .launch_inner::<C>(db, config)
            .await
            .with_context(|| format!("starting the {} context", C::NAME))?;
        self.health.extend(context.health_checks());
        Ok(context)
    }

    async fn launch_inner<C: Context>(&self, db: &Db, config: C::Config) -> anyhow::Result<C> {
        if self.migrate {
            C::migrations().run(C::NAME, db).await?;
        }
        let context = C::start(db, config, &self.deps).await?;
        context.offer_api(&self.deps.peers);
        for consumer in context.consumers() {
            self.deps
                .events
                .subscribe(Subscription {
                    context: C::NAME,
                    consumer: consumer.name,
                    patterns: consumer.patterns,
                    db: db.clone(),
                    handler: consumer.handler,
                    delivery: consumer.delivery,
                })
                .await?;
        }
        for worker in context.workers() {
            worker.spawn(C::NAME, &self.stopper);
        }
        Ok(context)
    }
}

/// The shared infrastructure a context is started with.
#[derive(Clone)]
pub struct ContextDeps {
    /// The bus: in-process in embedded mode, RabbitMQ in production.
    pub events: crate::events::Events,
    /// The cache: in-process (moka) in embedded mode, Redis in production. It never errors.
    pub cache: crate::cache::Cache,
    /// Verifies access tokens; routers add it as an `Extension` for `AuthUser`.
    pub keys: crate::auth::KeySet,
    /// Clients for the other contexts' APIs (in-process or HTTP).
    pub peers: crate::client::Peers,
    /// Fault-injection flags (off unless enabled: see `crate::faults`).
    pub faults: crate::faults::Faults,
}

/// A context's schema: its forward-only migrations, one set per backend (the SQL differs in
/// types and functions, never in meaning).
pub struct Migrations {
    pub sqlite: Migrator,
    pub postgres: Migrator,
}

impl Migrations {
    /// Applies these migrations for `context`, then the event bus tables (outbox, inbox, dead
    /// letters; kept in their own history table), to `db`.
    pub async fn run(&self, context: &str, db: &Db) -> Result<(), DbError> {
        let err = |source| DbError::Migrate {
            context: context.into(),
            source,
        };
        match db {
            Db::Sqlite(db) => {
                let mut conn = db.acquire().await.map_err(|e| err(e.into()))?;
                self.sqlite.run(&mut *conn).await.map_err(err)?;
            }
            Db::Postgres(pool) => self.postgres.run(pool).await.map_err(err)?,
        }
        crate::events::migrate(db).await
    }
}

/// A context's [`Migrations`] from its `migrations/sqlite` and `migrations/postgres` folders
/// (paths are relative to the calling crate, as `sqlx::migrate!` reads them at compile time).
#[macro_export]
macro_rules! migrations {
    () => {
        $crate::context::Migrations {
            sqlite: ::sqlx::migrate!("./migrations/sqlite"),
            postgres: ::sqlx::migrate!("./migrations/postgres"),
        }
    };
}
