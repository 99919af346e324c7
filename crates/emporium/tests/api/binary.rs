//! The `emporium` binary itself: configuration errors, the admin CLI, graceful shutdown.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use test_support::app::PASSWORD;

fn emporium(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emporium"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMPORIUM_DATA_DIR", data_dir)
        .env("EMPORIUM_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .env("EMPORIUM_METRICS_TOKEN", test_support::app::METRICS_TOKEN)
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn a_bad_setting_exits_2_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    for (var, value) in [
        ("EMPORIUM_LISTEN", "not-an-address"),
        ("EMPORIUM_ARGON2_MEMORY_KIB", "12"),
        ("EMPORIUM_LOG_FORMAT", "xml"),
    ] {
        let out = emporium(dir.path())
            .env(var, value)
            .arg("serve")
            .output()
            .await
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
    let out = emporium(dir.path())
        .args(["serve", "--service", "identity"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
    // Production notifications has no storefront address to default to: mail links need one.
    let out = emporium(dir.path())
        .args(["serve", "--service", "notifications"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("EMPORIUM_PUBLIC_URL"), "{stderr}");
}

/// The dev mailbox shows every password-reset link, so it is refused on a listener that
/// is not loopback, and without it embedded mode needs a mail server.
#[tokio::test]
async fn the_dev_mailbox_is_refused_on_a_public_listener() {
    let dir = tempfile::tempdir().expect("tmp");
    for (extra, named) in [
        (Some(("EMPORIUM_DEV_MAILBOX", "true")), "EMPORIUM_DEV_MAILBOX"),
        (None, "EMPORIUM_SMTP_URL"),
    ] {
        let mut cmd = emporium(dir.path());
        cmd.env("EMPORIUM_LISTEN", "0.0.0.0:0");
        if let Some((var, value)) = extra {
            cmd.env(var, value);
        }
        let out = cmd.arg("serve").output().await.expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
    }
    let out = emporium(dir.path())
        .env("EMPORIUM_DEV_MAILBOX", "true")
        .env("EMPORIUM_PUBLIC_URL", "https://shop.example")
        .args(["serve", "--service", "notifications", "--listen", "0.0.0.0:0"])
        .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("EMPORIUM_DEV_MAILBOX"), "{stderr}");
}

#[tokio::test]
async fn a_misspelt_setting_or_log_filter_is_a_start_up_error_naming_the_closest_setting() {
    let dir = tempfile::tempdir().expect("tmp");
    let toml = dir.path().join("emporium.toml");
    std::fs::write(&toml, "listn = \"127.0.0.1:0\"\n").expect("write");
    let cases: [(&str, &str, &[&str]); 3] = [
        ("EMPORIUM_LISTN", "127.0.0.1:0", &["EMPORIUM_LISTN", "EMPORIUM_LISTEN"]),
        ("EMPORIUM_CONFIG", &toml.to_string_lossy(), &["`listn`", "`listen`"]),
        ("RUST_LOG", "info,sqlx=loud", &["RUST_LOG"]),
    ];
    for (var, value, expected) in cases {
        for command in [&["serve"][..], &["migrate"][..], &["dev", "--topology", "multi"][..]] {
            let out = tokio::time::timeout(
                Duration::from_secs(30),
                emporium(dir.path()).env(var, value).args(command).output(),
            )
            .await
            .expect("exits at once")
            .expect("run");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{var} {command:?}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
            for needle in expected {
                assert!(stderr.contains(needle), "{var} {command:?}: {stderr}");
            }
        }
    }
}

#[tokio::test]
async fn admin_create_reads_the_password_and_refuses_weak_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |password: &'static str| {
        let mut child = emporium(dir.path())
            .args(["admin", "create", "--email", "Boss@Example.com"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        async move {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(format!("{password}\n").as_bytes())
                .await
                .expect("write");
            drop(stdin);
            child.wait_with_output().await.expect("wait")
        }
    };
    let weak = run("password").await;
    assert_eq!(weak.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    let ok = run(PASSWORD).await;
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("created administrator boss@example.com"));
    let again = run(PASSWORD).await;
    assert_eq!(again.status.code(), Some(1), "the address is taken now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = emporium(dir.path())
        .env("EMPORIUM_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..300 {
        if client.get(format!("{base}/health/live")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the server did not start");

    // Registrations hash passwords with the production argon2 settings: slow enough to be in
    // flight when the signal lands.
    let requests: Vec<_> = (0..12)
        .map(|i| {
            let client = client.clone();
            let url = format!("{base}/api/v1/auth/register");
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&serde_json::json!({"email": format!("u{i}@example.com"), "password": PASSWORD, "name": "U"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    // Signal only once the server has accepted all twelve (in flight or done), with some still running.
    let mut accepted = false;
    for _ in 0..500 {
        let text = client
            .get(format!("{base}/metrics"))
            .bearer_auth(test_support::app::METRICS_TOKEN)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let value = |prefix: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let in_flight = value("http_requests_in_flight") - 1.0; // minus this scrape
        let done = value("http_requests_total{service=\"identity\",method=\"POST\",route=\"/api/v1/auth/register\"");
        if in_flight + done >= 12.0 {
            assert!(
                in_flight >= 1.0,
                "every request finished before the signal: the test proves nothing"
            );
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(accepted, "the server never accepted all requests");
    let pid = child.id().expect("pid").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill");
    assert!(killed.success());

    for r in futures::future::join_all(requests).await {
        assert_eq!(r.expect("joined").expect("no request was dropped"), 202);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exited")
        .expect("status");
    assert!(status.success(), "{status:?}");
    assert!(
        client.get(format!("{base}/health/live")).send().await.is_err(),
        "no longer listening"
    );
}

/// Plays an OTLP/HTTP collector: the binary must export the request's span, under the trace id
/// the caller sent in `traceparent`, when OTEL_EXPORTER_OTLP_ENDPOINT is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_over_otlp_under_the_callers_trace_id() {
    use tokio::io::AsyncReadExt;

    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let collector_addr = collector.local_addr().expect("addr");
    let received = tokio::spawn(async move {
        let mut all = Vec::new();
        // Read exports until the binary stops sending (it flushes on shutdown).
        while let Ok(Ok((mut socket, _))) = tokio::time::timeout(Duration::from_secs(20), collector.accept()).await {
            let mut buf = vec![0u8; 1 << 20];
            let mut request = Vec::new();
            while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buf)).await {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            all.extend(request);
            if all.windows(10).any(|w| w == b"/v1/traces") {
                break;
            }
        }
        all
    });

    let dir = tempfile::tempdir().expect("tmp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = emporium(dir.path())
        .env("EMPORIUM_LISTEN", format!("127.0.0.1:{port}"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector_addr}"))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let client = reqwest::Client::new();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut answered = false;
    for _ in 0..300 {
        let sent = client
            .get(format!("http://127.0.0.1:{port}/health/live"))
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .send()
            .await;
        if sent.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the server did not start");
    let pid = child.id().expect("pid").to_string();
    Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill");
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;

    let export = received.await.expect("collector");
    assert!(export.starts_with(b"POST /v1/traces"), "no OTLP export arrived");
    let id_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    assert!(
        export.windows(16).any(|w| w == id_bytes.as_slice()),
        "the exported span does not carry the caller's trace id"
    );
}

/// Held by every test that runs `emporium dev --topology multi`: its contexts prefer the same
/// fixed ports (18081–18087), so two runs at once would not be the topology each test expects.
pub(crate) static DEV_MULTI: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The environment of an `emporium dev --topology multi` run of its own: fresh databases (their
/// prefix is returned), namespace and queues, JSON logs, cheap password hashing.
pub(crate) fn dev_multi_env() -> (String, Vec<(String, String)>) {
    use test_support::services::{amqp_url, postgres_admin_url, redis_url};
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let prefix = format!("test_dev_{id}");
    let postgres = postgres_admin_url()
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .expect("postgres url");
    let env = [
        ("DEV_POSTGRES_URL", postgres),
        ("DEV_DATABASE_PREFIX", prefix.clone()),
        ("REDIS_URL", redis_url()),
        ("AMQP_URL", amqp_url()),
        ("EMPORIUM_NAMESPACE", format!("test-dev-{id}")),
        ("EMPORIUM_QUEUE_EXPIRY_SECS", "600".into()),
        ("EMPORIUM_LOG_FORMAT", "json".into()),
        ("RUST_LOG", "info".into()),
        ("EMPORIUM_ARGON2_MEMORY_KIB", "8192".into()),
        ("EMPORIUM_ARGON2_ITERATIONS", "1".into()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .into();
    (prefix, env)
}

/// Drops the seven databases of a [`dev_multi_env`] run.
pub(crate) async fn drop_dev_databases(prefix: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(&test_support::services::postgres_admin_url()).await {
        for ctx in [
            "identity",
            "catalog",
            "inventory",
            "cart",
            "ordering",
            "payments",
            "notifications",
        ] {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{prefix}_{ctx}\" WITH (FORCE)"
            )))
            .execute(&admin)
            .await;
        }
        admin.close().await;
    }
}

/// `emporium dev --topology multi` in the background, its output (all eight processes) in a file.
pub(crate) struct DevRun {
    child: tokio::process::Child,
    log: std::path::PathBuf,
    /// Banners in the log before this run (the log is shared by the runs of one test).
    banners_before: usize,
}

/// The last line of `emporium dev`'s start: every process answered ready.
const BANNER: &str = "Ctrl-C stops everything.";

impl DevRun {
    pub(crate) fn start(env: &[(String, String)], listen: &str, extra: &[&str], log: &std::path::Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_emporium"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["dev", "--topology", "multi", "--listen", listen])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true);
        let banners_before = std::fs::read_to_string(log).unwrap_or_default().matches(BANNER).count();
        Self {
            child: cmd.spawn().expect("spawn emporium dev"),
            log: log.to_owned(),
            banners_before,
        }
    }

    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) async fn wait_ready(&mut self, base: &str) {
        let client = reqwest::Client::new();
        for _ in 0..900 {
            if self.output().matches(BANNER).count() > self.banners_before
                && let Ok(r) = client.get(format!("{base}/health/ready")).send().await
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("emporium dev exited ({status}):\n{}", tail(&self.output()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("emporium dev not ready after 3 minutes:\n{}", tail(&self.output()));
    }

    /// SIGTERM (Ctrl-C's path): exits 0, and what it logged from then on has no warning.
    pub(crate) async fn stop_cleanly(mut self) -> String {
        let before = self.output().len();
        let pid = rustix::process::Pid::from_raw(self.child.id().expect("pid") as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("stops within a minute")
            .expect("wait");
        let log = self.output();
        assert!(status.success(), "emporium dev exited with {status}:\n{}", tail(&log));
        let after = &log[before..];
        let warnings: Vec<&str> = after
            .lines()
            .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
            .collect();
        assert!(
            warnings.is_empty(),
            "a clean stop logged warnings:\n{}",
            warnings.join("\n")
        );
        assert!(after.contains("stopped cleanly"), "{}", tail(&log));
        log
    }
}

pub(crate) fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The pid `emporium dev` last reported for `name`.
fn pid_of(log: &str, name: &str) -> i32 {
    let marker = format!("dev: started {name} (pid ");
    let at = log
        .rfind(&marker)
        .unwrap_or_else(|| panic!("{name} was not started:\n{}", tail(log)));
    log[at + marker.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("pid")
}

async fn product_count(client: &reqwest::Client, base: &str) -> Option<usize> {
    let r = client
        .get(format!("{base}/api/v1/catalog/products?limit=5"))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let body: serde_json::Value = r.json().await.ok()?;
    body["items"].as_array().map(Vec::len)
}

/// The multi-process topology end to end: the demo catalog loads on the first start (not on a
/// `--no-seed-demo` start), seeding invalidates list pages Redis cached while the catalog was
/// empty, a killed context is restarted while the others keep running, and SIGTERM stops every
/// process without a warning.
#[tokio::test]
async fn dev_multi_seeds_restarts_a_killed_context_and_stops_cleanly() {
    if !test_support::services::production_services_reachable().await {
        return;
    }
    let _one_topology_at_a_time = DEV_MULTI.lock().await;
    let (prefix, env) = dev_multi_env();
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let base = format!("http://{listen}");
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("dev.log");
    let client = reqwest::Client::new();

    let outcome = async {
        // 1. An empty catalog, its list page cached (in Redis) as empty.
        let mut run = DevRun::start(&env, &listen, &["--no-seed-demo"], &log);
        run.wait_ready(&base).await;
        assert_eq!(product_count(&client, &base).await, Some(0));
        run.stop_cleanly().await;

        // 2. A start without flags loads the demo catalog, and the list shows it at once.
        let mut run = DevRun::start(&env, &listen, &[], &log);
        run.wait_ready(&base).await;
        let shown = product_count(&client, &base).await;
        assert!(
            shown.is_some_and(|n| n > 0),
            "the demo catalog is listed at once: {shown:?}"
        );

        // 3. Kill one context: it is started again, the rest kept running.
        let before = run.output();
        let catalog = pid_of(&before, "catalog");
        let gateway = pid_of(&before, "gateway");
        let pid = rustix::process::Pid::from_raw(catalog).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL catalog");
        let mut back = false;
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let log = run.output();
            if log.contains("dev: catalog exited")
                && pid_of(&log, "catalog") != catalog
                && product_count(&client, &base).await.is_some_and(|n| n > 0)
            {
                back = true;
                break;
            }
            assert!(
                run.child.try_wait().expect("wait").is_none(),
                "emporium dev stopped:\n{}",
                tail(&log)
            );
        }
        let log = run.output();
        assert!(back, "catalog did not come back:\n{}", tail(&log));
        assert!(log.contains("restarting it in"), "{}", tail(&log));
        assert_eq!(pid_of(&log, "gateway"), gateway, "the other processes keep running");

        // 4. SIGTERM stops every process (the restarted one too), without warnings.
        let log = run.stop_cleanly().await;
        for name in [
            "identity",
            "catalog",
            "inventory",
            "cart",
            "ordering",
            "payments",
            "notifications",
            "gateway",
        ] {
            let pid = rustix::process::Pid::from_raw(pid_of(&log, name)).expect("pid");
            assert!(
                rustix::process::test_kill_process(pid).is_err(),
                "{name} is still running after emporium dev stopped"
            );
        }
    };
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(outcome)).await;

    // Whatever happened: drop the databases.
    drop_dev_databases(&prefix).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// `emporium healthcheck`, the image's HEALTHCHECK (the runtime image has no curl): exit 0 when
/// the URL answers 2xx, 1 with a line naming the URL when it answers otherwise, refuses the
/// connection or does not answer within the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_against_a_live_server_and_1_against_a_dead_port() {
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    };
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = emporium(dir.path())
        .env("EMPORIUM_LISTEN", format!("127.0.0.1:{port}"))
        .env("EMPORIUM_SEED_DEMO", "false")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not become ready");
    let healthcheck = |args: Vec<String>, listen: Option<String>| {
        let mut cmd = emporium(dir.path());
        cmd.arg("healthcheck").args(args);
        if let Some(listen) = listen {
            cmd.env("EMPORIUM_LISTEN", listen);
        }
        async move {
            let started = std::time::Instant::now();
            let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
                .await
                .expect("exits")
                .expect("run");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
                started.elapsed(),
            )
        }
    };

    let live = format!("{base}/health/ready");
    let (code, text, _) = healthcheck(vec!["--url".into(), live.clone()], None).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("healthy") && text.contains(&live), "{text}");
    // Without --url: /health/ready on EMPORIUM_LISTEN's port, asked on loopback.
    let (code, text, _) = healthcheck(vec![], Some(format!("0.0.0.0:{port}"))).await;
    assert_eq!(code, Some(0), "{text}");

    // An answer that is not 2xx.
    let missing = format!("{base}/health/nowhere");
    let (code, text, _) = healthcheck(vec!["--url".into(), missing.clone()], None).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("unhealthy") && text.contains(&missing) && text.contains("404"),
        "{text}"
    );

    // A port nobody listens on.
    let dead = format!("http://127.0.0.1:{}/health/ready", free_port());
    let (code, text, _) = healthcheck(vec!["--url".into(), dead.clone()], None).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("unhealthy") && text.contains(&dead), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");

    // A port that accepts the connection but never answers: given up after the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung = format!("http://{}/health/ready", silent.local_addr().expect("addr"));
    let (code, text, elapsed) = healthcheck(
        vec!["--url".into(), hung.clone(), "--timeout-ms".into(), "300".into()],
        None,
    )
    .await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("timeout") && text.contains(&hung), "{text}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    drop(silent);
}

#[tokio::test]
async fn rates_import_loads_an_ecb_file_and_names_what_is_wrong_with_a_bad_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("eurofxref-daily.xml");
    std::fs::write(
        &file,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
  <Cube><Cube time='2026-12-03'>
    <Cube currency='USD' rate='1.0856'/><Cube currency='JPY' rate='162.35'/><Cube currency='KWD' rate='0.3321'/>
    <Cube currency='XYZ' rate='2'/>
  </Cube></Cube>
</gesmes:Envelope>"#,
    )
    .expect("write");
    let out = emporium(dir.path())
        .args(["rates", "import"])
        .arg(&file)
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("imported 3 rates for 2026-12-03 (per EUR)"), "{stderr}");
    assert!(stderr.contains("skipped XYZ"), "{stderr}");
    let db = platform::db::Db::open_embedded(dir.path(), "catalog", platform::db::SqliteSizing::connections(1))
        .await
        .expect("db");
    let platform::db::Db::Sqlite(pool) = &db else {
        panic!("embedded is SQLite")
    };
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT currency, rate_micros, as_of FROM exchange_rates ORDER BY currency")
            .fetch_all(pool)
            .await
            .expect("rates");
    assert_eq!(
        rows,
        [
            ("JPY".to_owned(), 162_350_000, "2026-12-03".to_owned()),
            ("KWD".to_owned(), 332_100, "2026-12-03".to_owned()),
            ("USD".to_owned(), 1_085_600, "2026-12-03".to_owned()),
        ]
    );
    db.close().await;

    std::fs::write(&file, "<html>Service unavailable</html>").expect("write");
    for args in [
        vec!["rates".to_owned(), "import".to_owned(), file.display().to_string()],
        vec!["rates".to_owned(), "import".to_owned(), "/no/such/file.xml".to_owned()],
    ] {
        let out = emporium(dir.path()).args(&args).output().await.expect("run");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("eurofxref") && stderr.contains(&args[2]),
            "names the file and what to do: {stderr}"
        );
    }
}
