//! `emporium dev`: run Emporium on one machine for development.
//!
//! - `--topology embedded` (the default) is plain `emporium serve`: every context in one process.
//! - `--topology multi` runs the production topology: one process per context on its own
//!   PostgreSQL database, RabbitMQ between them, Redis for the cache and the shared rate limit,
//!   and the gateway in front, every process this same executable. Log lines are prefixed with
//!   the process's name; Ctrl-C (or SIGTERM) stops them all. A process that dies is started
//!   again with backoff, so one context can be killed to watch the system degrade and recover.
//!
//! Both load the demo catalog on the first start (an empty catalog), unless `--no-seed-demo`
//! or `EMPORIUM_SEED_DEMO=false`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::app::Service;

/// Set by `emporium dev` on its children (to its own pid): a child whose parent dies is sent
/// SIGTERM by the kernel, so even a SIGKILLed `emporium dev` leaves no orphans.
pub const EXIT_WITH_PARENT: &str = "EMPORIUM_EXIT_WITH_PARENT";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Topology {
    /// Every context in this process (the same as `emporium serve`).
    #[default]
    Embedded,
    /// One process per context plus the gateway, on PostgreSQL, Redis and RabbitMQ.
    Multi,
}

#[derive(Debug, Default, clap::Args)]
pub struct DevArgs {
    #[arg(long, value_enum, default_value_t = Topology::Embedded)]
    pub topology: Topology,
    /// Where the shop and the API answer (the gateway, in multi mode). Default 127.0.0.1:8080.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Load the demo catalog with stock when the catalog is empty. The default; kept so older
    /// scripts that pass it keep working.
    #[arg(long, hide = true, overrides_with = "no_seed_demo")]
    pub seed_demo: bool,
    /// Start with an empty catalog (no demo data on the first start; also EMPORIUM_SEED_DEMO=false).
    #[arg(long, overrides_with = "seed_demo")]
    pub no_seed_demo: bool,
}

impl DevArgs {
    /// Whether to load the demo catalog into an empty catalog: yes, unless `--no-seed-demo` or
    /// `EMPORIUM_SEED_DEMO=false` says otherwise.
    pub fn seed_demo(&self, src: &platform::config::ConfigSource) -> Result<bool, platform::config::ConfigError> {
        Ok(!self.no_seed_demo && src.flag("EMPORIUM_SEED_DEMO", true)?)
    }
}

/// Arms the parent-death signal when `emporium dev` started this process (see [`EXIT_WITH_PARENT`]).
pub fn exit_with_parent_if_asked() {
    let Some(parent) = std::env::var(EXIT_WITH_PARENT)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .and_then(Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(Signal::TERM)) {
        eprintln!("warning: cannot arrange to stop with `emporium dev` ({e})");
        return;
    }
    // The parent may have gone between our start and arming the signal.
    if rustix::process::getppid() != Some(parent) {
        eprintln!("`emporium dev` that started this process is gone; exiting");
        std::process::exit(1);
    }
}

/// Everything the multi-process topology is configured by (environment, with defaults for a
/// local machine), read once.
#[derive(Debug, Clone)]
struct MultiSettings {
    gateway: SocketAddr,
    postgres: String,
    database_prefix: String,
    redis_url: String,
    amqp_url: String,
    namespace: String,
    smtp_url: Option<String>,
    seed_demo: bool,
}

impl MultiSettings {
    fn from_env(args: &DevArgs) -> anyhow::Result<Self> {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let database_prefix = var("DEV_DATABASE_PREFIX", "emporium_dev");
        if database_prefix.is_empty()
            || !database_prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            bail!("DEV_DATABASE_PREFIX must be lower-case letters, digits and '_' (it names databases)");
        }
        Ok(Self {
            gateway: args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            postgres: var("DEV_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
                .trim_end_matches('/')
                .to_owned(),
            database_prefix,
            redis_url: var("REDIS_URL", "redis://127.0.0.1:6379"),
            amqp_url: var("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            namespace: var("EMPORIUM_NAMESPACE", "dev"),
            smtp_url: std::env::var("EMPORIUM_SMTP_URL").ok().filter(|v| !v.is_empty()),
            seed_demo: args.seed_demo(&platform::config::ConfigSource::from_env()?)?,
        })
    }

    fn database_name(&self, service: Service) -> String {
        format!("{}_{}", self.database_prefix, service.name())
    }

    fn database_url(&self, service: Service) -> String {
        format!("{}/{}", self.postgres, self.database_name(service))
    }

    fn public_url(&self) -> String {
        format!("http://{}", self.gateway)
    }
}

/// One process of the topology, with what it takes to start it again.
struct Process {
    name: String,
    url: String,
    child: Child,
    command: Command,
    /// When this child was started, and how many restarts in a row failed to keep it up.
    started: Instant,
    restarts: u32,
}

/// The first restart waits this long; each quick failure after doubles it, up to the maximum.
const RESTART_FIRST_DELAY: Duration = Duration::from_millis(500);
const RESTART_MAX_DELAY: Duration = Duration::from_secs(30);
/// A process that stayed up this long counts as healthy again: its next crash restarts quickly.
const RESTART_RESET_AFTER: Duration = Duration::from_secs(60);

/// The wait before restart number `restarts` (0-based) of a process that keeps failing.
fn restart_delay(restarts: u32) -> Duration {
    RESTART_FIRST_DELAY
        .saturating_mul(1u32.checked_shl(restarts.min(16)).unwrap_or(u32::MAX))
        .min(RESTART_MAX_DELAY)
}

/// `emporium dev --topology multi`.
pub async fn run_multi(args: &DevArgs) -> anyhow::Result<()> {
    let settings = MultiSettings::from_env(args)?;
    let exe = std::env::current_exe().context("locating the emporium executable")?;
    ensure_free(settings.gateway)
        .with_context(|| format!("the gateway's address {} is taken (use --listen)", settings.gateway))?;
    let ports = context_ports()?;

    eprintln!(
        "dev: PostgreSQL databases {}_<context> on {}",
        settings.database_prefix,
        platform::db::redact_url(&settings.postgres)
    );
    create_databases(&settings).await?;
    for service in Service::ALL {
        migrate(&exe, &settings, service).await?;
    }
    if settings.seed_demo {
        seed_demo(&settings).await?;
    }

    let secret = random_hex(32);
    let session_key = random_hex(64);
    let metrics_token = random_hex(24);
    let urls: BTreeMap<Service, String> = Service::ALL
        .iter()
        .map(|s| (*s, format!("http://{}", ports[s])))
        .collect();
    let mut processes = Vec::new();
    // One listener for the whole session, so a signal between two waits is never missed.
    let shutdown = platform::http::shutdown_signal();
    tokio::pin!(shutdown);
    let started = async {
        for service in Service::ALL {
            let mut cmd = base_command(&exe, &settings, &secret, &metrics_token);
            cmd.args([
                "serve",
                "--service",
                service.name(),
                "--listen",
                &ports[&service].to_string(),
            ])
            .env("DATABASE_URL", settings.database_url(service))
            // The gateway and the web pages pass the client's address on.
            .env("EMPORIUM_TRUST_FORWARDED_FOR", "true");
            for (peer, url) in &urls {
                cmd.env(format!("EMPORIUM_{}_URL", peer.name().to_ascii_uppercase()), url);
            }
            if service == Service::Notifications && settings.smtp_url.is_none() {
                cmd.env("EMPORIUM_DEV_MAILBOX", "true");
            }
            processes.push(spawn(service.name(), urls[&service].clone(), cmd)?);
        }
        let mut cmd = base_command(&exe, &settings, &secret, &metrics_token);
        cmd.args([
            "serve",
            "--service",
            "gateway",
            "--listen",
            &settings.gateway.to_string(),
        ])
        .env("EMPORIUM_WEB_SESSION_KEY", &session_key)
        .env(
            "EMPORIUM_DEV_MAILBOX",
            if settings.smtp_url.is_none() { "true" } else { "false" },
        );
        for (service, url) in &urls {
            cmd.env(
                format!("EMPORIUM_UPSTREAM_{}", service.name().to_ascii_uppercase()),
                url,
            );
        }
        processes.push(spawn("gateway", settings.public_url(), cmd)?);
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = started {
        stop_all(&mut processes).await;
        return Err(e);
    }

    let outcome = tokio::select! {
        ready = wait_until_ready(&mut processes) => ready.map(|()| true),
        () = &mut shutdown => Ok(false),
    };
    match outcome {
        Ok(true) => {}
        Ok(false) => {
            stop_all(&mut processes).await;
            return Ok(());
        }
        Err(e) => {
            stop_all(&mut processes).await;
            return Err(e);
        }
    }
    print_banner(&settings, &processes);

    // Supervise: a process that exits is started again after a pause that doubles while it keeps
    // failing; the others keep running (the gateway's breaker and readiness show the gap).
    loop {
        let (i, status) = tokio::select! {
            died = first_exit(&mut processes) => died,
            () = &mut shutdown => break,
        };
        let p = &mut processes[i];
        if p.started.elapsed() >= RESTART_RESET_AFTER {
            p.restarts = 0;
        }
        let delay = restart_delay(p.restarts);
        p.restarts += 1;
        eprintln!(
            "dev: {} exited ({status}); restarting it in {} ms (restart {} in a row)",
            p.name,
            delay.as_millis(),
            p.restarts
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => break,
        }
        let p = &mut processes[i];
        if let Err(e) = p.respawn() {
            // Cannot even start it (the executable is gone?): the next round tries again.
            eprintln!("dev: {e:#}");
        }
    }
    eprintln!("dev: stopping every process...");
    stop_all(&mut processes).await;
    eprintln!("dev: stopped");
    Ok(())
}

/// The variables every child gets: where the shared servers are, the shared service secret,
/// the namespace, readable logs, and the parent-death link.
fn base_command(exe: &std::path::Path, settings: &MultiSettings, secret: &str, metrics_token: &str) -> Command {
    let mut cmd = Command::new(exe);
    cmd.env("REDIS_URL", &settings.redis_url)
        .env("AMQP_URL", &settings.amqp_url)
        .env("EMPORIUM_NAMESPACE", &settings.namespace)
        .env("EMPORIUM_SERVICE_SECRET", secret)
        .env("EMPORIUM_PUBLIC_URL", settings.public_url())
        .env("EMPORIUM_SHUTDOWN_GRACE_SECS", "5")
        .env(EXIT_WITH_PARENT, std::process::id().to_string())
        .env_remove("EMPORIUM_LISTEN")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The built-in console is a development tool: on in every process unless switched off, with
    // a scrape token the gateway's pages use to merge the processes' traces and logs.
    if std::env::var_os("EMPORIUM_CONSOLE").is_none() {
        cmd.env("EMPORIUM_CONSOLE", "on");
    }
    if std::env::var_os("EMPORIUM_METRICS_TOKEN").is_none() {
        cmd.env("EMPORIUM_METRICS_TOKEN", metrics_token);
    }
    if std::env::var_os("EMPORIUM_LOG_FORMAT").is_none() {
        cmd.env("EMPORIUM_LOG_FORMAT", "pretty");
    }
    // A development topology: fault injection on (shared through Redis) unless said otherwise.
    if std::env::var_os("EMPORIUM_FAULT_INJECTION").is_none() {
        cmd.env("EMPORIUM_FAULT_INJECTION", "on");
    }
    if let Some(smtp) = &settings.smtp_url {
        cmd.env("EMPORIUM_SMTP_URL", smtp);
    }
    cmd
}

/// Starts `cmd`, copying its output line by line with `name | ` in front.
fn spawn(name: &str, url: String, mut cmd: Command) -> anyhow::Result<Process> {
    let child = start_child(name, &url, &mut cmd)?;
    Ok(Process {
        name: name.to_owned(),
        url,
        child,
        command: cmd,
        started: Instant::now(),
        restarts: 0,
    })
}

fn start_child(name: &str, url: &str, cmd: &mut Command) -> anyhow::Result<Child> {
    let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    let width = "notifications".len();
    let prefix = format!("{name:>width$} | ");
    if let Some(out) = child.stdout.take() {
        tokio::spawn(copy_lines(BufReader::new(out), prefix.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(copy_lines(BufReader::new(err), prefix));
    }
    eprintln!("dev: started {name} (pid {}) on {url}", child.id().unwrap_or(0));
    Ok(child)
}

impl Process {
    /// Starts the same command again (same port, same settings) after the child exited.
    fn respawn(&mut self) -> anyhow::Result<()> {
        self.child = start_child(&self.name, &self.url, &mut self.command)?;
        self.started = Instant::now();
        Ok(())
    }
}

async fn copy_lines<R: tokio::io::AsyncRead + Unpin>(reader: BufReader<R>, prefix: String) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{prefix}{line}");
    }
}

/// 127.0.0.1:18081..18087 when free, else any free port (a second `emporium dev` can run beside).
fn context_ports() -> anyhow::Result<BTreeMap<Service, SocketAddr>> {
    Service::ALL
        .iter()
        .map(|service| {
            let preferred = SocketAddr::from(([127, 0, 0, 1], 10_000 + service.default_port()));
            let addr = match std::net::TcpListener::bind(preferred) {
                Ok(_) => preferred,
                Err(_) => std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .and_then(|l| l.local_addr())
                    .context("finding a free port")?,
            };
            Ok((*service, addr))
        })
        .collect()
}

fn ensure_free(addr: SocketAddr) -> std::io::Result<()> {
    std::net::TcpListener::bind(addr).map(drop)
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates the seven databases that do not exist yet.
async fn create_databases(settings: &MultiSettings) -> anyhow::Result<()> {
    let admin_url = format!("{}/postgres", settings.postgres);
    let admin = sqlx::PgPool::connect(&admin_url).await.with_context(|| {
        format!(
            "cannot reach PostgreSQL at {} (set DEV_POSTGRES_URL, e.g. postgres://user:pass@127.0.0.1:5432)",
            platform::db::redact_url(&settings.postgres)
        )
    })?;
    for service in Service::ALL {
        let name = settings.database_name(service);
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_optional(&admin)
            .await
            .context("listing databases")?;
        if exists.is_none() {
            // The name is checked (letters, digits, '_') when the settings are read.
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&admin)
                .await
                .with_context(|| format!("creating database {name}"))?;
            eprintln!("dev: created database {name}");
        }
    }
    admin.close().await;
    Ok(())
}

/// `emporium migrate --service <name>`, the step a production release runs.
async fn migrate(exe: &std::path::Path, settings: &MultiSettings, service: Service) -> anyhow::Result<()> {
    let output = Command::new(exe)
        .args(["migrate", "--service", service.name()])
        .env("DATABASE_URL", settings.database_url(service))
        .env(EXIT_WITH_PARENT, std::process::id().to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running emporium migrate --service {}", service.name()))?;
    if !output.status.success() {
        bail!(
            "emporium migrate --service {} failed ({}): {}",
            service.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Loads the demo catalog the way the embedded first start does, into the seven databases at
/// once: one in-process app over them (in-process bus, so catalog and inventory exchange their
/// events right here), and waits until both outboxes are delivered before the processes start.
async fn seed_demo(settings: &MultiSettings) -> anyhow::Result<()> {
    let mut pairs: Vec<(String, String)> = Service::ALL
        .iter()
        .map(|s| {
            (
                format!("EMPORIUM_{}_DATABASE_URL", s.name().to_ascii_uppercase()),
                settings.database_url(*s),
            )
        })
        .collect();
    pairs.push(("EMPORIUM_PUBLIC_URL".into(), settings.public_url()));
    // The processes' shared cache: seeding bumps its list generation there, so pages cached
    // while the catalog was empty (an earlier run) are not served for their remaining TTL.
    pairs.push(("REDIS_URL".into(), settings.redis_url.clone()));
    pairs.push(("EMPORIUM_NAMESPACE".into(), settings.namespace.clone()));
    pairs.push(("RUST_LOG".into(), "warn".into()));
    let src = platform::config::ConfigSource::from_pairs(pairs)?;
    let app_settings = crate::app::Settings::load(&src, settings.gateway)?;
    // On a runtime of its own, dropped afterwards: the app's background tasks (outbox relays,
    // consumers) end with it instead of lingering in `emporium dev` for the whole session.
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let seeded = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting a runtime for the demo data")
            .and_then(|runtime| runtime.block_on(Box::pin(crate::cli::seed_demo_into(&app_settings))));
        let _ = done.send(seeded);
    });
    result
        .await
        .context("the demo-data thread stopped")?
        .context("loading the demo catalog")
}

/// Polls every process's `/health/ready` until all answer 200 (two minutes at most); a process
/// that exits meanwhile fails the start.
async fn wait_until_ready(processes: &mut [Process]) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("building an HTTP client")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ready = vec![false; processes.len()];
    loop {
        for (i, p) in processes.iter_mut().enumerate() {
            if let Some(status) = p.child.try_wait().context("watching the processes")? {
                bail!("{} exited while starting ({status}); see its log lines above", p.name);
            }
            if !ready[i] {
                let url = format!("{}/health/ready", p.url);
                ready[i] = http.get(&url).send().await.is_ok_and(|r| r.status().is_success());
            }
        }
        if ready.iter().all(|r| *r) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let waiting: Vec<&str> = processes
                .iter()
                .zip(&ready)
                .filter(|(_, r)| !**r)
                .map(|(p, _)| p.name.as_str())
                .collect();
            bail!("not ready after 2 minutes: {}", waiting.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The first process to exit (its index), with its status.
async fn first_exit(processes: &mut [Process]) -> (usize, std::process::ExitStatus) {
    let waits = processes
        .iter_mut()
        .map(|p| Box::pin(async move { (p.child.wait().await, p.name.clone()) }));
    let ((status, name), i, _) = futures::future::select_all(waits).await;
    match status {
        Ok(status) => (i, status),
        Err(e) => {
            eprintln!("dev: cannot watch {name}: {e}");
            (i, std::process::ExitStatus::default())
        }
    }
}

/// SIGTERM to every process still running (each drains and exits), SIGKILL after 15 s. Identity
/// goes last: the others fetch its signing keys while they drain, and would log that it is gone.
async fn stop_all(processes: &mut [Process]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let (last, first): (Vec<&mut Process>, Vec<&mut Process>) =
        processes.iter_mut().partition(|p| p.name == "identity");
    for mut wave in [first, last] {
        for p in wave.iter_mut() {
            if let Ok(None) = p.child.try_wait()
                && let Some(pid) = p.child.id().and_then(|id| Pid::from_raw(id as i32))
            {
                let _ = rustix::process::kill_process(pid, Signal::TERM);
            }
        }
        for p in wave {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, p.child.wait()).await.is_err() {
                eprintln!("dev: {} did not stop within 15 s; killing it", p.name);
                let _ = p.child.kill().await;
            }
        }
    }
}

fn print_banner(settings: &MultiSettings, processes: &[Process]) {
    let url = settings.public_url();
    let mut lines = vec![
        String::new(),
        "Emporium is running as separate processes (production topology):".to_owned(),
        format!("  shop          {url}/"),
        format!("  API docs      {url}/docs"),
        format!("  readiness     {url}/health/ready"),
    ];
    if settings.smtp_url.is_none() {
        lines.push(format!("  mailbox       {url}/api/v1/dev/mailbox"));
    }
    for p in processes {
        lines.push(format!(
            "  {:<13} {} (pid {})",
            p.name,
            p.url,
            p.child.id().unwrap_or(0)
        ));
    }
    lines.push("Ctrl-C stops everything.".to_owned());
    lines.push(String::new());
    eprintln!("{}", lines.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_follow_the_prefix() {
        let args = DevArgs::default();
        let settings = MultiSettings::from_env(&args).expect("settings");
        assert!(settings.database_name(Service::Catalog).ends_with("_catalog"));
        assert!(settings.database_url(Service::Catalog).starts_with("postgres"));
        assert_eq!(settings.public_url(), format!("http://{}", settings.gateway));
    }

    #[test]
    fn restarts_back_off_exponentially_up_to_a_ceiling() {
        assert_eq!(restart_delay(0), Duration::from_millis(500));
        assert_eq!(restart_delay(1), Duration::from_secs(1));
        assert_eq!(restart_delay(2), Duration::from_secs(2));
        assert_eq!(restart_delay(5), Duration::from_secs(16));
        assert_eq!(restart_delay(6), RESTART_MAX_DELAY);
        assert_eq!(restart_delay(u32::MAX), RESTART_MAX_DELAY);
    }

    #[test]
    fn the_demo_catalog_loads_unless_turned_off() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            dev: DevArgs,
        }
        let src = |pairs: &[(&str, &str)]| platform::config::ConfigSource::from_pairs(pairs.to_vec()).expect("src");
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("dev").chain(args.iter().copied()))
                .expect("args")
                .dev
        };
        assert!(parse(&[]).seed_demo(&src(&[])).expect("flag"));
        assert!(parse(&["--seed-demo"]).seed_demo(&src(&[])).expect("flag"));
        assert!(!parse(&["--no-seed-demo"]).seed_demo(&src(&[])).expect("flag"));
        assert!(
            !parse(&[])
                .seed_demo(&src(&[("EMPORIUM_SEED_DEMO", "false")]))
                .expect("flag")
        );
        assert!(
            !parse(&["--seed-demo", "--no-seed-demo"])
                .seed_demo(&src(&[]))
                .expect("flag")
        );
    }

    #[test]
    fn random_secrets_are_hex_of_the_asked_length() {
        let s = random_hex(32);
        assert_eq!(s.len(), 64);
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(s, random_hex(32));
    }
}
