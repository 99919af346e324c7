//! The `emporium` binary itself: configuration errors, the admin CLI, graceful shutdown.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::helpers::PASSWORD;

fn emporium(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emporium"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMPORIUM_DATA_DIR", data_dir)
        .env("EMPORIUM_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
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
        assert_eq!(r.expect("joined").expect("no request was dropped"), 201);
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
