//! The `emporium` command line.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use platform::config::{ConfigError, ConfigSource};
use platform::db::{Db, SqliteSizing};
use platform::dev_mailbox::DevMailbox;

use crate::app::{self, Service, Settings, Wiring};

#[derive(Debug, Parser)]
#[command(name = "emporium", version, about = "Emporium e-commerce platform", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP. Without --service: every context in one process on SQLite (embedded mode).
    Serve(ServeArgs),
    /// Run Emporium for development: embedded (one process), or `--topology multi`: every context
    /// in its own process plus the gateway, on the local PostgreSQL, Redis and RabbitMQ.
    Dev(crate::dev::DevArgs),
    /// Apply database migrations (production: run once per release, before `serve`).
    Migrate(TargetArgs),
    /// Load a generated catalog (categories, brands, attributes, prices, reviews) with stock into
    /// the embedded databases. Deterministic: the same --seed gives the same catalog.
    Seed(SeedArgs),
    /// Print the OpenAPI 3.1 document (JSON) of the embedded app, for client generators and CI.
    Openapi,
    /// Ask a URL (the process's `/health/ready`) and exit 0 on a 2xx answer, 1 otherwise: the
    /// container health check, since the runtime image has no curl.
    Healthcheck(HealthcheckArgs),
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Exchange rates for display currencies.
    Rates {
        #[command(subcommand)]
        command: RatesCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum RatesCommand {
    /// Load the rates of the ECB's daily reference-rate file (eurofxref-daily.xml; of the 90-day
    /// history file, the newest day) into the catalog, rebased onto the shop's currency when that
    /// is not the euro. Existing rates of the same currencies are replaced.
    Import {
        /// The XML file.
        file: std::path::PathBuf,
        /// `--service catalog`: the catalog database at DATABASE_URL (production); without it,
        /// the embedded catalog file.
        #[arg(long, value_enum)]
        service: Option<Service>,
    },
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Run only this context against DATABASE_URL (production mode), or the gateway in front of
    /// the context processes (EMPORIUM_UPSTREAM_<CONTEXT>).
    #[arg(long, value_enum)]
    pub service: Option<ServeTarget>,
    /// Address to listen on (overrides EMPORIUM_LISTEN).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// `emporium dev --no-seed-demo`: overrides EMPORIUM_SEED_DEMO.
    #[arg(skip)]
    pub seed_demo: Option<bool>,
}

#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// The URL to ask (plain http). Default: `/health/ready` on the port of EMPORIUM_LISTEN
    /// (8080 when unset), on 127.0.0.1 when it listens on every address.
    #[arg(long)]
    pub url: Option<String>,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
}

/// What `serve --service` runs: one context, or the gateway (which has no database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeTarget {
    Context(Service),
    Gateway,
}

impl clap::ValueEnum for ServeTarget {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            ServeTarget::Context(Service::Identity),
            ServeTarget::Context(Service::Catalog),
            ServeTarget::Context(Service::Inventory),
            ServeTarget::Context(Service::Cart),
            ServeTarget::Context(Service::Ordering),
            ServeTarget::Context(Service::Payments),
            ServeTarget::Context(Service::Notifications),
            ServeTarget::Gateway,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            ServeTarget::Context(service) => service.to_possible_value(),
            ServeTarget::Gateway => Some(clap::builder::PossibleValue::new("gateway")),
        }
    }
}

#[derive(Debug, Default, clap::Args)]
pub struct TargetArgs {
    /// The context whose database DATABASE_URL points at; without it, the embedded SQLite files.
    #[arg(long, value_enum)]
    pub service: Option<Service>,
}

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// How many products to add.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub products: u32,
    /// Generator seed; different seeds give different SKUs, so runs can be stacked.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Units of stock per product (a tenth of products get none, to show sold-out states).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub stock: u32,
    /// Instead: the small demo catalog that embedded mode loads on its first start, only into an
    /// empty catalog, unless EMPORIUM_SEED_DEMO=false (the compose stack's `seed-demo` job).
    #[arg(long, conflicts_with_all = ["products", "seed", "stock"])]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator. The password is prompted for (or read from the first line of stdin).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
    /// Make a new access-token signing key active; older keys stay valid until their tokens expire.
    RotateKeys,
}

/// A failure with its exit code: 2 for configuration, 1 for everything else.
enum Failure {
    Config(ConfigError),
    Other(anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    crate::dev::exit_with_parent_if_asked();
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    // A misspelt setting would otherwise fall back to its default without a word.
    if !matches!(command, Command::Openapi | Command::Healthcheck(_))
        && let Err(e) = ConfigSource::from_env().and_then(|src| {
            src.check_names()?;
            platform::config::log_filter(&src).map(drop)
        })
    {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let result = match command {
        Command::Serve(args) => serve(args).await,
        Command::Dev(args) => dev(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Admin { command } => admin(command).await,
        Command::Rates {
            command: RatesCommand::Import { file, service },
        } => import_rates(&file, service).await,
        Command::Seed(args) => seed(args).await,
        Command::Openapi => print_openapi(),
        Command::Healthcheck(args) => healthcheck(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

const EMBEDDED_LISTEN: &str = "127.0.0.1:8080";

/// `EMPORIUM_DEV_MAILBOX`: whether mail is kept in memory and listed at `/api/v1/dev/mailbox`.
/// Anyone who can reach that endpoint can read every password-reset link, so it is refused on a
/// listener that is not loopback. Unset, it follows
/// `on_by_default_on_loopback` (embedded mode) when the listener is loopback.
pub(crate) fn dev_mailbox_setting(
    src: &ConfigSource,
    listen: SocketAddr,
    on_by_default_on_loopback: bool,
) -> Result<bool, ConfigError> {
    const VAR: &str = "EMPORIUM_DEV_MAILBOX";
    let loopback = listen.ip().is_loopback();
    let wanted = src.flag(VAR, on_by_default_on_loopback && loopback)?;
    if wanted && !loopback {
        return Err(ConfigError::new(
            VAR,
            format!(
                "is only allowed on a loopback listener (127.0.0.1, ::1), not {listen}: the dev mailbox \
                 shows every mailed link, password resets included, to anyone who can reach it; \
                 configure EMPORIUM_SMTP_URL instead"
            ),
        ));
    }
    Ok(wanted)
}

fn default_listen(service: Option<Service>) -> SocketAddr {
    match service {
        None => EMBEDDED_LISTEN
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080))),
        Some(s) => SocketAddr::from(([0, 0, 0, 0], s.default_port())),
    }
}

/// The database of `name`: DATABASE_URL in production mode; in embedded mode
/// `EMPORIUM_<NAME>_DATABASE_URL` when set (all contexts in one process on PostgreSQL, as the
/// benchmarks run), else the embedded SQLite file.
async fn open_database(settings: &Settings, service: Option<Service>, name: &str) -> Result<Db, Failure> {
    let p = &settings.platform;
    let per_context = settings.infra.context_database_urls.get(name);
    let sqlite = SqliteSizing::for_context(name, p.db_max_connections);
    match (&p.database_url, service, per_context) {
        (Some(url), _, _) => Ok(Db::connect_sized(url, p.db_max_connections, sqlite)
            .await
            .context("connecting to DATABASE_URL")?),
        (None, Some(s), _) => Err(ConfigError::new(
            "DATABASE_URL",
            format!(
                "is required with --service {} (e.g. postgres://user@host/emporium_{})",
                s.name(),
                s.name()
            ),
        )
        .into()),
        (None, None, Some(url)) => Ok(Db::connect_sized(url, p.db_max_connections, sqlite)
            .await
            .with_context(|| format!("connecting to EMPORIUM_{}_DATABASE_URL", name.to_uppercase()))?),
        (None, None, None) => Ok(Db::open_embedded(&p.data_dir, name, sqlite)
            .await
            .context("opening the embedded database (check EMPORIUM_DATA_DIR)")?),
    }
}

/// A failure of the wiring: configuration errors keep their exit code.
fn wiring_failure(e: anyhow::Error) -> Failure {
    match e.downcast::<ConfigError>() {
        Ok(config) => Failure::Config(config),
        Err(other) => Failure::Other(other),
    }
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let mut src = ConfigSource::from_env()?;
    if let Some(listen) = args.listen {
        src.set("EMPORIUM_LISTEN", listen.to_string());
    }
    if let Some(seed_demo) = args.seed_demo {
        src.set("EMPORIUM_SEED_DEMO", seed_demo.to_string());
    }
    let service = match args.service {
        Some(ServeTarget::Gateway) => {
            let settings = Settings::load(&src, SocketAddr::from(([0, 0, 0, 0], 8080)))?;
            let _telemetry = platform::telemetry::init("gateway", &settings.platform, false);
            return crate::gateway_mode::serve(&settings, &src)
                .await
                .map_err(wiring_failure);
        }
        Some(ServeTarget::Context(service)) => Some(service),
        None => None,
    };
    let mut settings = Settings::load(&src, default_listen(service))?;
    if service == Some(Service::Notifications) {
        notifications::require_public_url(&src)?;
        // Production delivers webhooks over https only.
        settings.notifications.webhooks = settings.notifications.webhooks.clone().for_production(&src)?;
    }
    let migrate_on_start = src.flag("EMPORIUM_MIGRATE_ON_START", false)?;
    let mode = service.map_or("embedded", Service::name);
    // The built-in console records by default in embedded mode only (`emporium dev --topology
    // multi` switches it on for its processes).
    let _telemetry = platform::telemetry::init(mode, &settings.platform, service.is_none());

    let embedded = service.is_none();
    // Embedded mode on a loopback listener keeps mail in the dev mailbox unless told otherwise;
    // production notifications use it only when asked (the multi-process dev topology).
    let dev_mailbox = dev_mailbox_setting(&src, settings.platform.listen, embedded)?;
    if embedded && !dev_mailbox && settings.infra.smtp_url.is_none() {
        return Err(ConfigError::new(
            "EMPORIUM_SMTP_URL",
            "is required when the dev mailbox is off (embedded mode on a non-loopback listener, or \
             EMPORIUM_DEV_MAILBOX=false): mail needs somewhere to go, e.g. smtp://mail:25",
        )
        .into());
    }
    let app = start_app(&settings, service, embedded || migrate_on_start, dev_mailbox).await?;
    if embedded && settings.catalog.seed_demo {
        seed_demo(&app).await?;
    }

    let listen = settings.platform.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}: is another process using it? Set EMPORIUM_LISTEN or --listen")
    })?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let metrics = if settings.platform.metrics_token.is_some() {
        format!("metrics: http://{addr}/metrics with the EMPORIUM_METRICS_TOKEN bearer token")
    } else {
        "metrics: off, set EMPORIUM_METRICS_TOKEN to scrape /metrics".to_owned()
    };
    tracing::info!(
        mode,
        %addr,
        "Emporium is ready on http://{addr} (API docs: http://{addr}/docs, {metrics})"
    );
    platform::http::serve(
        listener,
        app.router.clone(),
        platform::http::shutdown_signal(),
        settings.platform.shutdown_grace,
    )
    .await
    .context("serving HTTP")?;
    app.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn dev(args: crate::dev::DevArgs) -> Result<(), Failure> {
    match args.topology {
        // Embedded mode loads the demo catalog on first start (unless --no-seed-demo or
        // EMPORIUM_SEED_DEMO=false).
        crate::dev::Topology::Embedded => {
            serve(ServeArgs {
                service: None,
                listen: args.listen,
                seed_demo: args.no_seed_demo.then_some(false),
            })
            .await
        }
        crate::dev::Topology::Multi => crate::dev::run_multi(&args).await.map_err(wiring_failure),
    }
}

/// Loads the demo catalog with stock into the databases `settings` names, as the embedded first
/// start does, and waits until catalog and inventory have told each other (`emporium dev`).
pub(crate) async fn seed_demo_into(settings: &Settings) -> anyhow::Result<()> {
    let app = start_app(settings, None, true, true).await.map_err(|e| match e {
        Failure::Config(c) => anyhow::Error::new(c),
        Failure::Other(e) => e,
    })?;
    let seeded = async {
        seed_demo(&app).await?;
        wait_for_delivery(&app, |_, _| {}).await?;
        Ok::<(), Failure>(())
    }
    .await;
    app.close().await;
    seeded.map_err(|e| match e {
        Failure::Config(c) => anyhow::Error::new(c),
        Failure::Other(e) => e,
    })
}

/// Opens the databases of the contexts to run and builds the app on them.
async fn start_app(
    settings: &Settings,
    service: Option<Service>,
    migrate: bool,
    dev_mailbox: bool,
) -> Result<app::App, Failure> {
    let embedded = service.is_none();
    let mut databases = BTreeMap::new();
    for s in service.map_or_else(|| Service::ALL.to_vec(), |s| vec![s]) {
        databases.insert(s, open_database(settings, service, s.name()).await?);
    }
    let (events, cache, faults) = app::connect_infrastructure(settings, service)
        .await
        .map_err(|e| match e.downcast::<ConfigError>() {
            Ok(config) => Failure::Config(config),
            Err(other) => Failure::Other(other),
        })?;
    let wiring = Wiring {
        databases,
        events,
        cache,
        faults,
        dev_mailbox: dev_mailbox.then(DevMailbox::new),
        migrate,
    };
    app::build(settings, wiring)
        .await
        .map_err(|e| match e.downcast::<ConfigError>() {
            Ok(config) => Failure::Config(config),
            Err(e) if embedded => Failure::Other(e),
            Err(e) => Failure::Other(
                e.context("hint: has `emporium migrate --service <name>` been run against this DATABASE_URL?"),
            ),
        })
}

/// Loads the small demo catalog (with stock) on the first embedded start.
async fn seed_demo(app: &app::App) -> Result<(), Failure> {
    let (Some(catalog), Some(inventory)) = (&app.catalog, &app.inventory) else {
        return Ok(());
    };
    if let Some(report) = catalog::seed::seed_demo_if_empty(catalog)
        .await
        .context("seeding the demo catalog")?
    {
        let skus = &report.skus;
        let stock: Vec<(String, i64)> = skus
            .iter()
            .enumerate()
            .map(|(i, sku)| (sku.clone(), demo_stock(i)))
            .filter(|(_, units)| *units > 0)
            .collect();
        inventory
            .bulk_restock(&stock, "demo data")
            .await
            .context("stocking the demo catalog")?;
        tracing::info!(
            products = skus.len(),
            "loaded the demo catalog (set EMPORIUM_SEED_DEMO=false to skip)"
        );
    }
    Ok(())
}

/// Demo stock levels: mostly plenty, some low, a few sold out (no restock), so every badge shows.
fn demo_stock(i: usize) -> i64 {
    match i % 10 {
        0 => 0,
        1 | 2 => 4,
        _ => 25 + (i as i64 * 7) % 75,
    }
}

async fn seed(args: SeedArgs) -> Result<(), Failure> {
    let src = ConfigSource::from_env()?;
    if src.raw("DATABASE_URL").is_some() {
        return Err(ConfigError::new(
            "DATABASE_URL",
            "`emporium seed` fills the embedded-mode databases (EMPORIUM_DATA_DIR, or EMPORIUM_CATALOG_DATABASE_URL and \
             EMPORIUM_INVENTORY_DATABASE_URL); unset DATABASE_URL",
        )
        .into());
    }
    let settings = Settings::load(&src, default_listen(None))?;
    if args.demo {
        if !src.flag("EMPORIUM_SEED_DEMO", true)? {
            eprintln!("EMPORIUM_SEED_DEMO=false: the demo catalog is not loaded");
            return Ok(());
        }
        return seed_demo_into(&settings).await.map_err(wiring_failure);
    }
    let app = start_app(&settings, None, true, true).await?;
    let (Some(catalog), Some(inventory)) = (&app.catalog, &app.inventory) else {
        return Err(anyhow::anyhow!("the embedded app has no catalog or inventory").into());
    };
    let total = args.products as usize;
    let started = std::time::Instant::now();
    let progress = |done: usize, count: usize| {
        let pct = done * 100 / count.max(1);
        let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\rproducts {done:>8}/{count} [{:<30}] {pct:>3}% {rate:>7.0}/s",
            "#".repeat(pct * 30 / 100)
        );
    };
    let report = catalog::seed::seed_products(catalog, total, args.seed, &progress)
        .await
        .context("seeding products")?;
    eprintln!();
    let stock: Vec<(String, i64)> = report
        .skus
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, sku)| (sku.clone(), i64::from(args.stock)))
        .collect();
    for (i, chunk) in stock.chunks(5_000).enumerate() {
        inventory
            .bulk_restock(chunk, "seed")
            .await
            .context("stocking seeded products")?;
        eprint!("\rstock    {:>8}/{}", (i * 5_000 + chunk.len()), stock.len());
    }
    eprintln!();
    // Inventory learns of products, and catalog of stock levels, through the bus: wait until
    // every outbox is drained and every queue consumed, so a server started next is not still
    // busy catching up (with RabbitMQ, a published event may still wait in a queue).
    wait_for_delivery(&app, |pending, queued| {
        eprint!("\revents {pending:>8} to publish, {queued:>8} queued")
    })
    .await?;
    eprintln!();
    // Bulk loading leaves work a first search would otherwise pay for: statistics, and the
    // full-text index's pending entries (PostgreSQL) or segments (SQLite).
    catalog
        .service()
        .store()
        .settle_after_bulk_load()
        .await
        .context("tidying the catalog after the bulk load")?;
    eprintln!(
        "seeded {} products, {} categories, {} reviews in {:.1} s",
        report.products,
        report.categories,
        report.reviews,
        started.elapsed().as_secs_f64()
    );
    app.close().await;
    Ok(())
}

/// Waits (ten minutes at most) until no outbox of `app` holds an unpublished event and no queue
/// of its consumers holds an untaken one, twice in a row: a consumer that has just taken the last
/// message may still be writing events of its own.
async fn wait_for_delivery(app: &app::App, progress: impl Fn(i64, u64)) -> Result<(), Failure> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let mut quiet = 0;
    loop {
        let mut pending = 0;
        for db in app.databases.values() {
            pending += platform::events::pending(db).await.context("reading the outbox")?;
        }
        let queued = app
            .events
            .queued()
            .await
            .map_err(|e| anyhow::anyhow!("reading the queues' depth: {e}"))?;
        progress(pending, queued);
        quiet = if pending == 0 && queued == 0 { quiet + 1 } else { 0 };
        if quiet == 2 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(anyhow::anyhow!(
                "{pending} events still unpublished and {queued} queued after 10 minutes; check the logs for relay \
                 or consumer errors"
            )
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn migrate(args: TargetArgs) -> Result<(), Failure> {
    let src = ConfigSource::from_env()?;
    let settings = Settings::load(&src, default_listen(args.service))?;
    let targets: Vec<Service> = args.service.map_or_else(|| Service::ALL.to_vec(), |s| vec![s]);
    for service in targets {
        let db = open_database(&settings, args.service, service.name()).await?;
        eprintln!("migrating {} ({})...", service.name(), db.backend());
        service
            .migrate(&db)
            .await
            .with_context(|| format!("migrating {}", service.name()))?;
        db.close().await;
        eprintln!("migrated {}", service.name());
    }
    Ok(())
}

async fn import_rates(file: &std::path::Path, service: Option<Service>) -> Result<(), Failure> {
    if service.is_some_and(|s| s != Service::Catalog) {
        return Err(
            anyhow::anyhow!("exchange rates live in the catalog: use --service catalog, or no --service").into(),
        );
    }
    let src = ConfigSource::from_env()?;
    let settings = Settings::load(&src, default_listen(service))?;
    let base = catalog::CatalogConfig::from_source(&src)?.default_currency;
    let xml = std::fs::read_to_string(file).with_context(|| {
        format!(
            "reading {}: download the file from https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml",
            file.display()
        )
    })?;
    let ecb = catalog::rates::parse_ecb(&xml).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let rates = ecb
        .rebased(base)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let db = open_database(&settings, service, Service::Catalog.name()).await?;
    if service.is_none() {
        // Embedded: the file may not exist yet (no server started on this data directory).
        Service::Catalog.migrate(&db).await.context("migrating the catalog")?;
    }
    let store = catalog::store::open(&db);
    let as_of = catalog::rates::format_date(ecb.as_of);
    store
        .put_rates(&rates, &format!("ecb {as_of}"), platform::clock::now())
        .await
        .context("storing the rates")?;
    db.close().await;
    for skipped in &ecb.skipped {
        eprintln!("skipped {skipped}");
    }
    eprintln!(
        "imported {} rates for {as_of} (per {base}) into the catalog ({}); a running catalog shows them within its cache TTL",
        rates.len(),
        db.backend()
    );
    Ok(())
}

async fn healthcheck(args: HealthcheckArgs) -> Result<(), Failure> {
    let timeout = std::time::Duration::from_millis(args.timeout_ms);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .context("building an HTTP client")?;
    let url = &args.url.unwrap_or_else(|| {
        let listen = std::env::var("EMPORIUM_LISTEN")
            .ok()
            .and_then(|v| v.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let host = if listen.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], listen.port()))
        } else {
            listen
        };
        format!("http://{host}/health/ready")
    });
    let response = client.get(url).send().await.map_err(|e| {
        // The cause (refused, timed out, bad URL) is at the bottom of the chain.
        let cause = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .last()
            .map_or_else(String::new, ToString::to_string);
        let kind = if e.is_timeout() {
            "no answer within the timeout"
        } else {
            "unreachable"
        };
        anyhow::anyhow!("unhealthy: {url}: {kind} ({cause}; timeout {} ms)", args.timeout_ms)
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(anyhow::anyhow!("unhealthy: {url} answered {status}").into());
    }
    println!("healthy: {url} answered {status}");
    Ok(())
}

fn print_openapi() -> Result<(), Failure> {
    println!("{}", crate::api_doc::served(true).trim_end());
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password for the new administrator: ")?;
        let again = rpassword::prompt_password("Repeat the password: ")?;
        anyhow::ensure!(first == again, "the two passwords differ; nothing was created");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        anyhow::ensure!(
            !password.is_empty(),
            "no password on stdin; pipe it in or run from a terminal to be prompted"
        );
        Ok(password)
    }
}

async fn admin(command: AdminCommand) -> Result<(), Failure> {
    let src = ConfigSource::from_env()?;
    let service = src.raw("DATABASE_URL").map(|_| Service::Identity);
    let settings = Settings::load(&src, default_listen(service))?;
    let db = open_database(&settings, service, identity::CONTEXT).await?;
    identity::migrate(&db).await.context("migrating identity")?;
    let identity = identity::Identity::detached(&db, settings.identity.clone()).await?;
    let service = identity.service();
    match command {
        AdminCommand::Create { email, name } => {
            let password = read_password()?;
            let user = service
                .create_admin(identity::service::Registration { email, password, name })
                .await
                .map_err(|e| match e {
                    identity::service::IdentityError::Validation(errors) => anyhow::anyhow!(
                        "{}",
                        errors
                            .iter()
                            .map(|e| format!("{} {}", e.field, e.message))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    other => anyhow::anyhow!(other),
                })?;
            println!("created administrator {} ({})", user.email, user.id);
        }
        AdminCommand::RotateKeys => {
            let (kid, signs_from) = service.keys().rotate().await?;
            println!("new signing key {kid} is published now and signs from {signs_from}");
        }
    }
    db.close().await;
    Ok(())
}
