//! TLS to the services a managed cloud only offers encrypted: proven against a real
//! redis-server started here with a TLS port and a throwaway self-signed certificate.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use test_support::services::in_ci;

/// A redis-server listening only on TLS, stopped when dropped.
struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `None` (skipped with a note) when redis-server or openssl is missing outside CI.
async fn tls_redis() -> Option<TlsRedis> {
    let dir = tempfile::tempdir().expect("tmp");
    let path = |name: &str| dir.path().join(name);
    std::fs::write(
        path("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    // A throwaway CA, and a server certificate for 127.0.0.1 signed by it.
    let steps: [Vec<&str>; 3] = [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Emporium test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ],
    ];
    let made = steps.iter().try_for_each(|args| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("openssl {args:?} failed")))
        }
    });
    let (cert, key) = (path("cert.pem"), path("key.pem"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let child = made.ok().and_then(|()| {
        Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    });
    let Some(child) = child else {
        assert!(!in_ci(), "redis-server (with TLS) and openssl are needed with CI=true");
        eprintln!("SKIPPED: redis-server or openssl missing");
        return None;
    };
    let redis = TlsRedis { child, port, _dir: dir };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(redis);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not open its TLS port {port}");
}

/// Starts the embedded binary with its cache on `redis_url`; returns it and its base URL.
fn start(dir: &std::path::Path, redis_url: &str, ca_file: Option<&std::path::Path>) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMPORIUM_DATA_DIR", dir)
        .env("EMPORIUM_LISTEN", format!("127.0.0.1:{port}"))
        .env("EMPORIUM_NAMESPACE", format!("tls-{}", uuid::Uuid::new_v4().simple()))
        .env("EMPORIUM_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .env("REDIS_URL", redis_url)
        .env("EMPORIUM_SEED_DEMO", "false")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ca) = ca_file {
        // The system trust store (rustls-native-certs) honours SSL_CERT_FILE, as OpenSSL does:
        // how an operator trusts a private CA; managed Redis certificates chain to public roots.
        cmd.env("SSL_CERT_FILE", ca);
    }
    (cmd.spawn().expect("spawn"), format!("http://127.0.0.1:{port}"))
}

/// Managed Redis (ElastiCache with in-transit encryption) only speaks TLS: the binary's cache
/// connects to a `rediss://` URL, verifying the server's certificate against the trust store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_speaks_tls_to_redis_and_verifies_its_certificate() {
    let Some(redis) = tls_redis().await else { return };
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let ca = redis._dir.path().join("ca.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let client = reqwest::Client::new();

    let (mut trusted, base) = start(dir.path(), &url, Some(&ca));
    let mut report = String::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/health/ready")).send().await {
            let ok = r.status() == 200;
            report = r.text().await.unwrap_or_default();
            if ok {
                break;
            }
        }
        if let Ok(Some(status)) = trusted.try_wait() {
            panic!("the server exited ({status}) instead of connecting over TLS");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(report.contains("redis"), "ready, with Redis among its checks: {report}");
    // A cached read goes through Redis over TLS.
    for _ in 0..2 {
        let r = client
            .get(format!("{base}/api/v1/catalog/products?limit=1"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
    }
    let _ = trusted.kill().await;

    // Without the CA in its trust store the certificate is refused: the binary does not start.
    let dir = tempfile::tempdir().expect("tmp");
    let (untrusted, _) = start(dir.path(), &url, None);
    let out = tokio::time::timeout(Duration::from_secs(60), untrusted.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rediss://127.0.0.1"),
        "names the Redis it could not reach: {stderr}"
    );
}
