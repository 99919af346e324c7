//! Builds the application router: contexts, platform endpoints, API docs and the shared stack.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use cart::{Cart, CartConfig};
use catalog::{Catalog, CatalogConfig};
use identity::{Identity, IdentityConfig};
use inventory::{Inventory, InventoryConfig};
use notifications::{MailTransport, Notifications, NotificationsConfig, SmtpSettings};
use ordering::{Ordering, OrderingConfig};
use payments::{Payments, PaymentsConfig};
use platform::auth::KeySet;
use platform::cache::Cache;
use platform::client::{LocalRouter, Peers};
use platform::config::{ConfigError, ConfigSource, PlatformConfig};
use platform::context::{Context as _, ContextDeps, Launcher, Stopper};
use platform::db::Db;
use platform::dev_mailbox::DevMailbox;
use platform::events::{BusSettings, Events};
use platform::faults::Faults;
use platform::health::Health;
use platform::http::HttpLimits;

/// The contexts a process can run. Embedded mode runs all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Service {
    Identity,
    Catalog,
    Inventory,
    Cart,
    Ordering,
    Payments,
    Notifications,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Identity,
        Service::Catalog,
        Service::Inventory,
        Service::Cart,
        Service::Ordering,
        Service::Payments,
        Service::Notifications,
    ];

    /// The order a process starts its contexts in: identity first, since the others verify
    /// tokens with its keys.
    pub const START_ORDER: [Service; 7] = [
        Service::Identity,
        Service::Catalog,
        Service::Inventory,
        Service::Cart,
        Service::Payments,
        Service::Ordering,
        Service::Notifications,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Identity => identity::CONTEXT,
            Service::Catalog => catalog::CONTEXT,
            Service::Inventory => inventory::CONTEXT,
            Service::Cart => cart::CONTEXT,
            Service::Ordering => ordering::CONTEXT,
            Service::Payments => payments::CONTEXT,
            Service::Notifications => notifications::CONTEXT,
        }
    }

    /// The production port (architecture doc).
    pub fn default_port(self) -> u16 {
        match self {
            Service::Identity => 8081,
            Service::Catalog => 8082,
            Service::Inventory => 8083,
            Service::Cart => 8084,
            Service::Ordering => 8085,
            Service::Payments => 8086,
            Service::Notifications => 8087,
        }
    }

    /// Applies this context's migrations to `db`.
    pub async fn migrate(self, db: &Db) -> anyhow::Result<()> {
        match self {
            Service::Identity => identity::migrate(db).await?,
            Service::Catalog => catalog::migrate(db).await?,
            Service::Inventory => inventory::migrate(db).await?,
            Service::Cart => cart::migrate(db).await?,
            Service::Ordering => ordering::migrate(db).await?,
            Service::Payments => payments::migrate(db).await?,
            Service::Notifications => notifications::migrate(db).await?,
        }
        Ok(())
    }

    /// Contexts whose production process calls peers as a service (and so needs the secret).
    fn calls_peers_as_service(self) -> bool {
        matches!(self, Service::Identity | Service::Ordering)
    }
}

const DB_SCHEMES: &[&str] = &["postgres://", "postgresql://", "sqlite:"];

/// Where the cache, the bus and the token keys come from (production); embedded mode needs none.
#[derive(Debug, Clone)]
pub struct InfraConfig {
    pub redis_url: Option<String>,
    pub amqp_url: Option<String>,
    /// Prefix of Redis keys and RabbitMQ exchange/queue names, so environments can share servers.
    pub namespace: String,
    pub queue_expiry: Option<std::time::Duration>,
    pub cache_max_bytes: u64,
    /// `EMPORIUM_CACHE_LOCAL_MB`: production, the budget of each process's copy of what it read
    /// from Redis, kept fresh by Redis's invalidations (0: none).
    pub cache_local_bytes: u64,
    /// Identity's base URL, for its JWKS, when identity runs in another process.
    pub identity_url: Option<String>,
    /// Base URLs of contexts running in other processes (`EMPORIUM_<CONTEXT>_URL`), by name.
    pub peer_urls: BTreeMap<String, String>,
    /// Exchanged for service tokens (`EMPORIUM_SERVICE_SECRET`); embedded mode makes one up.
    pub service_secret: Option<String>,
    /// Outgoing mail server (`EMPORIUM_SMTP_URL`); without it embedded mode uses the dev mailbox.
    pub smtp_url: Option<String>,
    /// Embedded mode on PostgreSQL: `EMPORIUM_<CONTEXT>_DATABASE_URL` per context.
    pub context_database_urls: BTreeMap<&'static str, String>,
    /// `EMPORIUM_FAULT_INJECTION`; unset means on in embedded mode, off with `--service`.
    pub fault_injection: Option<bool>,
    /// `EMPORIUM_PEER_CALLS=http`: contexts of one process call each other through its router
    /// (every call crosses the HTTP stack, as between processes) instead of directly.
    pub peer_calls_over_http: bool,
}

impl InfraConfig {
    pub fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        let url_var = |var: &str, schemes: &[&str]| -> Result<Option<String>, ConfigError> {
            match src.raw(var) {
                None | Some("") => Ok(None),
                Some(url) if schemes.iter().any(|s| url.starts_with(s)) => Ok(Some(url.to_owned())),
                Some(_) => Err(ConfigError::new(
                    var,
                    format!("must start with {}", schemes.join(" or ")),
                )),
            }
        };
        let namespace: String = src.get("EMPORIUM_NAMESPACE", "emporium".to_owned())?;
        if namespace.is_empty()
            || !namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::new(
                "EMPORIUM_NAMESPACE",
                "must be letters, digits, '-' or '_'",
            ));
        }
        let expiry = src.number_in("EMPORIUM_QUEUE_EXPIRY_SECS", 0, 0..=30 * 86_400)?;
        let http: &[&str] = &["http://", "https://"];
        let peer_urls = [
            ("identity", url_var("EMPORIUM_IDENTITY_URL", http)?),
            ("catalog", url_var("EMPORIUM_CATALOG_URL", http)?),
            ("inventory", url_var("EMPORIUM_INVENTORY_URL", http)?),
            ("cart", url_var("EMPORIUM_CART_URL", http)?),
            ("ordering", url_var("EMPORIUM_ORDERING_URL", http)?),
            ("payments", url_var("EMPORIUM_PAYMENTS_URL", http)?),
        ]
        .into_iter()
        .filter_map(|(name, url)| Some((name.to_owned(), url?)))
        .collect();
        let peer_calls_over_http = match src.raw("EMPORIUM_PEER_CALLS") {
            None | Some("") | Some("direct") => false,
            Some("http") => true,
            Some(_) => return Err(ConfigError::new("EMPORIUM_PEER_CALLS", "must be direct or http")),
        };
        let service_secret = match src.raw("EMPORIUM_SERVICE_SECRET") {
            None | Some("") => None,
            Some(s) if s.len() < 32 => {
                return Err(ConfigError::new(
                    "EMPORIUM_SERVICE_SECRET",
                    "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
                ));
            }
            Some(s) => Some(s.to_owned()),
        };
        Ok(Self {
            redis_url: url_var("REDIS_URL", &["redis://", "rediss://"])?,
            amqp_url: url_var("AMQP_URL", &["amqp://", "amqps://"])?,
            namespace,
            queue_expiry: (expiry > 0).then(|| std::time::Duration::from_secs(expiry)),
            // 16 MiB holds the hot pages of a 10k-product shop; each MiB of budget cost ~1.45 MB
            // of RSS in the mixed soak (64 MiB: 181 MB after 600k requests, 16 MiB: 111 MB, at a
            // 10% lower request rate: docs/benchmarks.md, "Memory after a mixed soak").
            cache_max_bytes: src.number_in("EMPORIUM_CACHE_MAX_MB", 16, 1..=65_536)? << 20,
            cache_local_bytes: src.number_in("EMPORIUM_CACHE_LOCAL_MB", 16, 0..=65_536)? << 20,
            identity_url: url_var("EMPORIUM_IDENTITY_URL", http)?,
            peer_urls,
            service_secret,
            smtp_url: url_var("EMPORIUM_SMTP_URL", &["smtp://", "smtps://"])?,
            context_database_urls: [
                ("identity", url_var("EMPORIUM_IDENTITY_DATABASE_URL", DB_SCHEMES)?),
                ("catalog", url_var("EMPORIUM_CATALOG_DATABASE_URL", DB_SCHEMES)?),
                ("inventory", url_var("EMPORIUM_INVENTORY_DATABASE_URL", DB_SCHEMES)?),
                ("cart", url_var("EMPORIUM_CART_DATABASE_URL", DB_SCHEMES)?),
                ("ordering", url_var("EMPORIUM_ORDERING_DATABASE_URL", DB_SCHEMES)?),
                ("payments", url_var("EMPORIUM_PAYMENTS_DATABASE_URL", DB_SCHEMES)?),
                (
                    "notifications",
                    url_var("EMPORIUM_NOTIFICATIONS_DATABASE_URL", DB_SCHEMES)?,
                ),
            ]
            .into_iter()
            .filter_map(|(name, url)| Some((name, url?)))
            .collect(),
            fault_injection: match src.raw("EMPORIUM_FAULT_INJECTION") {
                None => None,
                Some(_) => Some(src.flag("EMPORIUM_FAULT_INJECTION", false)?),
            },
            peer_calls_over_http,
        })
    }
}

/// Every setting the app needs, read once at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub platform: PlatformConfig,
    pub infra: InfraConfig,
    pub identity: IdentityConfig,
    pub catalog: CatalogConfig,
    pub inventory: InventoryConfig,
    pub cart: CartConfig,
    pub ordering: OrderingConfig,
    pub payments: PaymentsConfig,
    pub notifications: NotificationsConfig,
    /// The web pages (a session key is made up when none is configured: see `web::WebConfig`).
    pub web: web::WebConfig,
    /// Security headers, CORS, rate limit and token check for whatever faces browsers.
    pub edge: gateway::EdgeConfig,
}

impl Settings {
    pub fn load(src: &ConfigSource, default_listen: std::net::SocketAddr) -> Result<Self, ConfigError> {
        let platform = PlatformConfig::from_source(src, default_listen)?;
        let identity = IdentityConfig::from_source(src, &platform.public_url)?;
        Ok(Self {
            infra: InfraConfig::from_source(src)?,
            identity,
            catalog: CatalogConfig::from_source(src)?,
            inventory: InventoryConfig::from_source(src)?,
            cart: CartConfig::from_source(src)?,
            ordering: OrderingConfig::from_source(src)?,
            payments: PaymentsConfig::from_source(src)?,
            // Links in mails use the same public URL as everything else (it defaults from the listen address).
            notifications: NotificationsConfig {
                public_url: platform.public_url.trim_end_matches('/').to_owned(),
                ..NotificationsConfig::from_source(src)?
            },
            web: web::WebConfig::from_source(src, &platform.public_url, true)?,
            edge: gateway::EdgeConfig::from_source(src, &platform.public_url)?,
            platform,
        })
    }
}

/// What the app runs on: one database per context it runs, the bus, the cache, and the dev
/// mailbox in embedded mode.
pub struct Wiring {
    pub databases: BTreeMap<Service, Db>,
    pub events: Events,
    pub cache: Cache,
    pub faults: Faults,
    pub dev_mailbox: Option<DevMailbox>,
    /// Apply migrations before serving (embedded mode and tests; production runs `emporium migrate`).
    pub migrate: bool,
}

/// The fault-injection flags: off unless enabled (on by default in embedded mode); shared through
/// Redis when it is configured, and a production process with them on must have Redis, or its
/// replicas would disagree.
pub async fn connect_faults(settings: &Settings, required: Option<Service>) -> anyhow::Result<Faults> {
    let infra = &settings.infra;
    if !infra.fault_injection.unwrap_or(required.is_none()) {
        return Ok(Faults::disabled());
    }
    Ok(match &infra.redis_url {
        Some(url) => Faults::redis(url, &infra.namespace).await?,
        None if required.is_some() => {
            return Err(ConfigError::new(
                "REDIS_URL",
                "is required with EMPORIUM_FAULT_INJECTION=on in production mode: every process reads the flags from it",
            )
            .into());
        }
        None => Faults::in_process(),
    })
}

/// The bus, cache and fault flags for `settings`: RabbitMQ/Redis when their URLs are set, else
/// in-process. `required` names the production service that must not silently fall back to
/// in-process.
pub async fn connect_infrastructure(
    settings: &Settings,
    required: Option<Service>,
) -> anyhow::Result<(Events, Cache, Faults)> {
    // Metric descriptions only reach a recorder that exists: install it before anything describes.
    platform::metrics::install();
    let infra = &settings.infra;
    let faults = connect_faults(settings, required).await?;
    let bus_settings = BusSettings {
        namespace: infra.namespace.clone(),
        queue_expiry: infra.queue_expiry,
        faults: faults.clone(),
        ..BusSettings::default()
    };
    // Every context publishes or consumes events (identity's mail requests included).
    let needs_bus = required.is_some();
    let events = match &infra.amqp_url {
        Some(url) => Events::rabbitmq(url, bus_settings).await?,
        None if needs_bus => {
            return Err(ConfigError::new(
                "AMQP_URL",
                "is required in production mode for this service (e.g. amqp://user:pass@rabbitmq:5672/%2f)",
            )
            .into());
        }
        None => Events::in_process(bus_settings),
    };
    let cache = match &infra.redis_url {
        Some(url) => Cache::redis(url, &infra.namespace, infra.cache_local_bytes).await?,
        None if required == Some(Service::Catalog) => {
            return Err(ConfigError::new(
                "REDIS_URL",
                "is required in production mode for catalog: replicas share one cache (e.g. redis://redis:6379)",
            )
            .into());
        }
        None => Cache::in_process(infra.cache_max_bytes),
    };
    Ok((events, cache.with_faults(faults.clone()), faults))
}

/// A built application, ready to serve.
pub struct App {
    pub router: Router,
    pub databases: BTreeMap<Service, Db>,
    pub events: Events,
    /// Stops the contexts' background workers.
    pub workers: Stopper,
    /// Each context's use cases, when this process runs it (for the CLI and tests).
    pub identity: Option<Arc<identity::IdentityService>>,
    pub catalog: Option<Arc<Catalog>>,
    pub inventory: Option<Arc<inventory::InventoryService>>,
}

/// The service secret: configured, or (when every context runs in this process) a random one,
/// since nothing outside the process needs to know it.
fn service_secret(settings: &Settings, databases: &BTreeMap<Service, Db>) -> anyhow::Result<Option<String>> {
    if let Some(secret) = &settings.infra.service_secret {
        return Ok(Some(secret.clone()));
    }
    let all_here = Service::ALL.iter().all(|s| databases.contains_key(s)) && settings.infra.peer_urls.is_empty();
    if all_here {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        return Ok(Some(bytes.iter().map(|b| format!("{b:02x}")).collect()));
    }
    if databases.keys().any(|s| s.calls_peers_as_service()) {
        return Err(ConfigError::new(
            "EMPORIUM_SERVICE_SECRET",
            "is required when contexts run in separate processes (the same value for identity and ordering; e.g. `openssl rand -hex 32`)",
        )
        .into());
    }
    Ok(None)
}

impl App {
    /// Stops the contexts' workers, the event relays and consumers, then closes every pool
    /// (after the server has drained): in that order, so nothing wakes up to a closed pool.
    pub async fn close(&self) {
        self.workers.stop();
        self.events.shutdown().await;
        for db in self.databases.values() {
            db.close().await;
        }
    }
}

/// Where notifications sends mail: the SMTP server when configured, else the dev mailbox.
fn mail_transport(settings: &Settings, dev_mailbox: Option<&DevMailbox>) -> Result<MailTransport, ConfigError> {
    match (&settings.infra.smtp_url, dev_mailbox) {
        (Some(url), _) => Ok(MailTransport::Smtp(
            SmtpSettings::from_url(url).map_err(|e| ConfigError::new("EMPORIUM_SMTP_URL", e.to_string()))?,
        )),
        (None, Some(mailbox)) => Ok(MailTransport::DevMailbox(mailbox.clone())),
        (None, None) => Err(ConfigError::new(
            "EMPORIUM_SMTP_URL",
            "is required in production mode for notifications (e.g. smtp://mail:25)",
        )),
    }
}

pub async fn build(settings: &Settings, wiring: Wiring) -> anyhow::Result<App> {
    platform::metrics::install();
    let Wiring {
        databases,
        events,
        cache,
        faults,
        dev_mailbox,
        migrate,
    } = wiring;
    if migrate {
        // Each context has a database of its own: their migrations run side by side, before the
        // contexts start one after the other.
        futures::future::try_join_all(databases.iter().map(|(service, db)| async move {
            service
                .migrate(db)
                .await
                .with_context(|| format!("migrating the {} context", service.name()))
        }))
        .await?;
    }
    let mut router = Router::new();
    let mut health = Health::new();
    let mut app_identity = None;
    let secret = service_secret(settings, &databases)?;
    let local = LocalRouter::new();
    let peers = Peers::new(
        local.clone(),
        databases.keys().map(|s| s.name().to_owned()),
        settings.infra.peer_urls.clone(),
        secret.clone(),
    );
    peers.set_direct_calls(!settings.infra.peer_calls_over_http);
    let mut launcher = Launcher::new(
        ContextDeps {
            events: events.clone(),
            cache: cache.clone(),
            // Identity's own keys once it started here (it starts first and verifies with its
            // own), else its published JWKS: set below before any other context starts.
            keys: KeySet::new(),
            peers,
            faults,
        },
        // Migrated above.
        false,
    );
    // Without identity in this process, tokens are checked against its published JWKS.
    if !databases.contains_key(&Service::Identity) {
        let Some(url) = &settings.infra.identity_url else {
            return Err(ConfigError::new(
                "EMPORIUM_IDENTITY_URL",
                "is required when identity runs in another process (e.g. http://identity:8081)",
            )
            .into());
        };
        launcher.set_keys(KeySet::from_jwks_url(
            format!("{}/.well-known/jwks.json", url.trim_end_matches('/')),
            std::time::Duration::from_secs(60),
        ));
    }
    let mut app_catalog = None;
    let mut app_inventory = None;
    for service in Service::START_ORDER {
        let Some(db) = databases.get(&service) else { continue };
        let context_router = match service {
            Service::Identity => {
                let config = IdentityConfig {
                    service_secret: secret.clone(),
                    ..settings.identity.clone()
                };
                let identity = launcher.launch::<Identity>(db, config).await?;
                launcher.set_keys(identity.key_set());
                app_identity = Some(identity.service());
                identity.router()
            }
            Service::Catalog => {
                let catalog = launcher.launch::<Catalog>(db, settings.catalog.clone()).await?;
                let router = catalog.router();
                app_catalog = Some(Arc::new(catalog));
                router
            }
            Service::Inventory => {
                let inventory = launcher.launch::<Inventory>(db, settings.inventory.clone()).await?;
                app_inventory = Some(inventory.service());
                inventory.router()
            }
            Service::Cart => launcher.launch::<Cart>(db, settings.cart.clone()).await?.router(),
            Service::Payments => launcher
                .launch::<Payments>(db, settings.payments.clone())
                .await?
                .router(),
            Service::Ordering => launcher
                .launch::<Ordering>(db, settings.ordering.clone())
                .await?
                .router(),
            Service::Notifications => {
                let transport = mail_transport(settings, dev_mailbox.as_ref())?;
                launcher
                    .launch::<Notifications>(db, (settings.notifications.clone(), transport))
                    .await?
                    .router()
            }
        };
        router = router.merge(context_router);
    }
    let deps = launcher.deps().clone();
    router = router.merge(platform::http::tag_routes(events.dead_letter_router(), "events"));

    let doc = crate::api_doc::served(dev_mailbox.is_some());
    if let Some(mailbox) = dev_mailbox {
        router = router.merge(platform::http::tag_routes(mailbox.router(), "dev"));
    }
    for (service, db) in &databases {
        health = health.with_check(db.health_check(service.name()));
        db.watch_pool(service.name());
    }
    for check in launcher.health_checks() {
        health = health.with_check(check.clone());
    }
    if let Some(check) = events.health_check() {
        health = health.with_check(check);
    }
    if let Some(check) = cache.health_check() {
        health = health.with_check(check);
    }
    // The web pages are served where every context runs (embedded mode); in production the
    // gateway process serves them.
    let everything_here = Service::ALL.iter().all(|s| databases.contains_key(s));
    if everything_here {
        router = router.merge(web::router(settings.web.clone(), deps.peers.clone()));
    }
    let mut ops = Router::new()
        .merge(health.router())
        .merge(platform::metrics::router(settings.platform.metrics_token.clone()))
        .merge(platform::docs::router(doc));
    // The built-in console's buffers, for the pages of the process that merges them.
    if let Some(console) = platform::console::installed() {
        ops = ops.merge(platform::console::router(
            console,
            settings.platform.metrics_token.clone(),
        ));
    }
    let router = router.merge(platform::http::tag_routes(ops, "platform"));
    let limits = HttpLimits {
        max_body_bytes: settings.platform.max_body_bytes,
        request_timeout: settings.platform.request_timeout,
    };
    // Tokens revoked in identity (logout, reset, disable, delete) stop working in every context
    // of this process before they expire: identity tells the set at once when it runs here, and
    // its events feed it otherwise.
    let revocations =
        platform::auth::Revocations::new(settings.identity.lifetimes.access + std::time::Duration::from_secs(60));
    if let Some(service) = &app_identity {
        service.feed_revocations(revocations.clone());
    }
    if let Some((service, db)) = databases.iter().next() {
        events
            .subscribe(platform::events::Subscription {
                context: service.name(),
                consumer: "revocations",
                patterns: platform::auth::REVOCATION_EVENTS.to_vec(),
                db: db.clone(),
                handler: Arc::new(platform::auth::RevocationFeed(revocations.clone())),
                // The set lives in each process's memory: every replica must hear every revocation.
                delivery: platform::events::Delivery::EveryReplica,
            })
            .await
            .context("subscribing to identity's revocations")?;
    }
    let wiring = platform::http::Wiring {
        keys: Some(deps.keys.clone()),
        revocations: Some(revocations),
        trust_forwarded_for: (settings.platform.trusted_proxy_hops > 0).then_some(platform::http::TrustForwardedFor {
            hops: settings.platform.trusted_proxy_hops,
        }),
    };
    let router = platform::http::with_platform_stack(router, limits, wiring);
    // Contexts in this process call each other through the finished router (same stack, no socket),
    // inside the edge: their calls are not the browser's, so they spend no client's rate budget.
    local.set(router.clone());
    // Where every context runs in this process it faces browsers itself: it gets the same edge as
    // the gateway process (a single context in production sits behind the gateway).
    let router = if everything_here {
        let limiter = gateway::RateLimiter::in_process(&settings.edge);
        gateway::with_edge(router, &settings.edge, deps.keys.clone(), limiter)
    } else {
        router
    };
    Ok(App {
        router,
        databases,
        events,
        workers: launcher.stopper(),
        identity: app_identity,
        catalog: app_catalog,
        inventory: app_inventory,
    })
}
