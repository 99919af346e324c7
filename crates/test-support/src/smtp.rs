//! A real SMTP server for tests: `tests/smtp_sink.py` (aiosmtpd) on a random port, writing each
//! accepted message as one JSON file into a temporary directory. Killed on drop.
//!
//! aiosmtpd comes from PyPI, installed by [`crate::python`] on first use.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Child;

use crate::python::{python_for, start_server};

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
        let python = python_for("aiosmtpd", "SMTP test server").await?;
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
        let args = [self.dir.path().display().to_string(), self.port.to_string()];
        let (child, port) = start_server(&self.python, "tests/smtp_sink.py", &args, Duration::from_secs(20)).await;
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
