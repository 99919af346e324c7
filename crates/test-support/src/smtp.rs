//! A real SMTP server for tests: `tests/smtp_sink.py` (aiosmtpd) on a random port, writing each
//! accepted message as one JSON file into a temporary directory. Killed on drop.
//!
//! aiosmtpd comes from PyPI, installed by [`crate::python`] on first use.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::python::{python, workspace};
use crate::services::in_ci;

pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    python: String,
    child: Option<Child>,
}

impl SmtpSink {
    /// Starts the sink on a free port. Without Python/aiosmtpd: `None` (skipped, with a note),
    /// or a failure under CI=true.
    pub async fn start() -> Option<Self> {
        let python = match python("aiosmtpd").await {
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
