//! A real SMTP server for tests: `tests/smtp_sink.py` (aiosmtpd) on a random port, writing each
//! accepted message as one JSON file into a temporary directory. Killed on drop.
//!
//! aiosmtpd comes from PyPI: the first test that needs it creates `target/test-venv` and installs
//! it there (once per machine; a lock file keeps concurrent test binaries from racing).
//! `EMPORIUM_TEST_SMTP_PYTHON` points at another interpreter instead.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

use crate::services::in_ci;

const AIOSMTPD: &str = "aiosmtpd==1.4.6";

pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    python: String,
    child: Option<Child>,
}

/// The repository root (this crate sits at `crates/test-support`).
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn has_aiosmtpd(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// A Python with aiosmtpd, installing it into `target/test-venv` when there is none.
async fn python() -> Result<String, String> {
    static PYTHON: OnceCell<Result<String, String>> = OnceCell::const_new();
    PYTHON
        .get_or_init(|| async {
            if let Ok(p) = std::env::var("EMPORIUM_TEST_SMTP_PYTHON") {
                return if has_aiosmtpd(&p).await {
                    Ok(p)
                } else {
                    Err(format!("EMPORIUM_TEST_SMTP_PYTHON={p} has no aiosmtpd"))
                };
            }
            let venv = workspace().join("target/test-venv");
            let python = venv.join("bin/python").to_string_lossy().into_owned();
            if has_aiosmtpd(&python).await {
                return Ok(python);
            }
            let _lock = InstallLock::acquire(&workspace().join("target/test-venv.lock")).await;
            if has_aiosmtpd(&python).await {
                return Ok(python);
            }
            eprintln!("installing {AIOSMTPD} into {} for the SMTP tests...", venv.display());
            let run = |program: String, args: Vec<String>| async move {
                let out = Command::new(&program)
                    .args(&args)
                    .output()
                    .await
                    .map_err(|e| format!("{program}: {e}"))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "{program} {}: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
            };
            run(
                "python3".into(),
                vec!["-m".into(), "venv".into(), venv.to_string_lossy().into_owned()],
            )
            .await?;
            let pip = venv.join("bin/pip").to_string_lossy().into_owned();
            run(
                pip,
                vec![
                    "install".into(),
                    "-q".into(),
                    "--disable-pip-version-check".into(),
                    AIOSMTPD.into(),
                ],
            )
            .await?;
            Ok(python)
        })
        .await
        .clone()
}

/// A lock file held while installing (other test binaries wait; a stale one is broken after 3 minutes).
struct InstallLock(PathBuf);

impl InstallLock {
    async fn acquire(path: &Path) -> Self {
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        loop {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => return Self(path.to_owned()),
                Err(_) if std::time::Instant::now() > deadline => {
                    let _ = std::fs::remove_file(path);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl SmtpSink {
    /// Starts the sink on a free port. Without Python/aiosmtpd: `None` (skipped, with a note),
    /// or a failure under CI=true.
    pub async fn start() -> Option<Self> {
        let python = match python().await {
            Ok(p) => p,
            Err(why) => {
                if in_ci() {
                    panic!("CI=true but the SMTP test server cannot run: {why}");
                }
                eprintln!("SKIPPED: no SMTP test server ({why})");
                return None;
            }
        };
        let mut sink = Self {
            port: 0,
            dir: tempfile::tempdir().expect("sink dir"),
            python,
            child: None,
        };
        sink.spawn().await;
        Some(sink)
    }

    async fn spawn(&mut self) {
        let mut child = Command::new(&self.python)
            .arg(workspace().join("tests/smtp_sink.py"))
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start smtp_sink.py");
        let stdout = child.stdout.take().expect("sink stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("smtp sink ready within 20 s")
            .expect("read sink stdout")
            .expect("sink printed nothing");
        self.port = ready
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected sink output {ready:?}"));
        self.child = Some(child);
    }

    /// `smtp://127.0.0.1:<port>`, for `EMPORIUM_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server (the port stays reserved for [`SmtpSink::restart`]); connections are refused.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Starts the server again on the same port, keeping the messages received so far.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Waits until at least `n` messages arrived (panics after `timeout`), then returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "expected {n} messages within {timeout:?}, got {}: {messages:#?}",
                    messages.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read sink dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                name.ends_with(".json") && !name.starts_with('.')
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read message")).expect("message json"))
            .collect()
    }

    /// Messages to `to`, in arrival order.
    pub fn messages_to(&self, to: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case(to))))
            })
            .collect()
    }
}
