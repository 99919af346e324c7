//! A real SMTP server for tests: `tests/smtp_sink.py` (aiosmtpd) on a random port, writing each
//! message it accepts as one JSON file into a temporary directory. Killed on drop.
//!
//! Self-contained (tokio, serde_json, tempfile) so it can move into the HTTP suite's helpers.rs.
//! Python: `EMPORIUM_TEST_SMTP_PYTHON`, else `/work/venv-smtp/bin/python`, else `python3`; the
//! interpreter needs aiosmtpd. Without one the test is skipped with a note, except with CI=true.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    python: String,
    child: Option<Child>,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/smtp_sink.py")
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

async fn find_python() -> Option<String> {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("EMPORIUM_TEST_SMTP_PYTHON") {
        candidates.push(p);
    }
    candidates.push("/work/venv-smtp/bin/python".into());
    candidates.push("python3".into());
    for c in candidates {
        if has_aiosmtpd(&c).await {
            return Some(c);
        }
    }
    None
}

impl SmtpSink {
    /// Starts the sink on a free port. `None` (test skipped, with a note) when no Python with
    /// aiosmtpd is found outside CI; a panic in CI.
    pub async fn start() -> Option<Self> {
        let Some(python) = find_python().await else {
            let why = "no Python with aiosmtpd (python3 -m venv /work/venv-smtp && /work/venv-smtp/bin/pip install aiosmtpd, or set EMPORIUM_TEST_SMTP_PYTHON)";
            if in_ci() {
                panic!("CI=true but {why}");
            }
            eprintln!("SKIPPED: {why}");
            return None;
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
            .arg(script())
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
        let port = ready
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected sink output {ready:?}"));
        self.port = port;
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
}
