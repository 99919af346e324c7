//! The `emporium` command line.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use platform::config::{ConfigError, ConfigSource};
use platform::db::Db;
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
    /// Apply database migrations (production: run once per release, before `serve`).
    Migrate(TargetArgs),
    /// Print the OpenAPI 3.1 document (JSON) of the embedded app, for client generators and CI.
    Openapi,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Run only this context against DATABASE_URL (production mode).
    #[arg(long, value_enum)]
    pub service: Option<Service>,
    /// Address to listen on (overrides EMPORIUM_LISTEN).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Default, clap::Args)]
pub struct TargetArgs {
    /// The context whose database DATABASE_URL points at; without it, the embedded SQLite files.
    #[arg(long, value_enum)]
    pub service: Option<Service>,
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
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Admin { command } => admin(command).await,
        Command::Openapi => print_openapi(),
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

fn default_listen(service: Option<Service>) -> SocketAddr {
    match service {
        None => EMBEDDED_LISTEN
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080))),
        Some(s) => SocketAddr::from(([0, 0, 0, 0], s.default_port())),
    }
}

/// The database of `service`: DATABASE_URL in production mode, else the embedded SQLite file.
async fn open_database(settings: &Settings, service: Option<Service>, name: &str) -> Result<Db, Failure> {
    let p = &settings.platform;
    match (&p.database_url, service) {
        (Some(url), _) => Ok(Db::connect(url, p.db_max_connections)
            .await
            .context("connecting to DATABASE_URL")?),
        (None, Some(s)) => Err(ConfigError::new(
            "DATABASE_URL",
            format!(
                "is required with --service {} (e.g. postgres://user@host/emporium_{})",
                s.name(),
                s.name()
            ),
        )
        .into()),
        (None, None) => Ok(Db::open_embedded(&p.data_dir, name, p.db_max_connections)
            .await
            .context("opening the embedded database (check EMPORIUM_DATA_DIR)")?),
    }
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let mut src = ConfigSource::from_env()?;
    if let Some(listen) = args.listen {
        src.set("EMPORIUM_LISTEN", listen.to_string());
    }
    let settings = Settings::load(&src, default_listen(args.service))?;
    let migrate_on_start = src.flag("EMPORIUM_MIGRATE_ON_START", false)?;
    let mode = args.service.map_or("embedded", Service::name);
    let _telemetry = platform::telemetry::init(mode, &settings.platform);

    let embedded = args.service.is_none();
    let wiring = Wiring {
        identity_db: open_database(&settings, args.service, identity::CONTEXT).await?,
        dev_mailbox: embedded.then(DevMailbox::new),
        migrate: embedded || migrate_on_start,
    };
    let app = app::build(&settings, wiring).await.map_err(|e| {
        if embedded {
            e
        } else {
            e.context("hint: has `emporium migrate --service <name>` been run against this DATABASE_URL?")
        }
    })?;

    let listen = settings.platform.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}: is another process using it? Set EMPORIUM_LISTEN or --listen")
    })?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        mode,
        %addr,
        "Emporium is ready on http://{addr} (API docs: http://{addr}/docs, metrics: http://{addr}/metrics)"
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

async fn migrate(args: TargetArgs) -> Result<(), Failure> {
    let src = ConfigSource::from_env()?;
    let settings = Settings::load(&src, default_listen(args.service))?;
    let targets: Vec<Service> = args.service.map_or_else(|| Service::ALL.to_vec(), |s| vec![s]);
    for service in targets {
        let db = open_database(&settings, args.service, service.name()).await?;
        eprintln!("migrating {} ({})...", service.name(), db.backend());
        match service {
            Service::Identity => identity::migrate(&db).await.context("migrating identity")?,
        }
        db.close().await;
        eprintln!("migrated {}", service.name());
    }
    Ok(())
}

fn print_openapi() -> Result<(), Failure> {
    let json = app::api_document(true)
        .to_pretty_json()
        .context("serialising the OpenAPI document")?;
    println!("{json}");
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
    let identity = identity::Identity::start(
        &db,
        settings.identity.clone(),
        std::sync::Arc::new(identity::mailers::UndeliverableMailer),
        false,
    )
    .await?;
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
            let kid = service.keys().rotate().await?;
            println!("new signing key {kid} is active; replicas pick it up within a minute");
        }
    }
    db.close().await;
    Ok(())
}
