//! The Python the test servers run on (`tests/smtp_sink.py` with aiosmtpd, localstripe): one
//! virtual environment, `target/test-venv`, holding the packages `tests/requirements.txt` pins. The first test that
//! needs it creates it (once per machine; a lock file keeps concurrent test binaries from racing);
//! `.ci/install-tools.sh` does the same ahead of the tests. `EMPORIUM_TEST_PYTHON` points at
//! another interpreter instead.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::OnceCell;

/// Every package the test servers import, pinned; the one list the shell scripts install too.
const REQUIREMENTS: &str = "tests/requirements.txt";

/// The repository root (this crate sits at `crates/test-support`).
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn imports(python: &str, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// The module names of [`REQUIREMENTS`] (each line's part before `==`), for one `import`.
fn modules() -> String {
    let text = std::fs::read_to_string(workspace().join(REQUIREMENTS)).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split("==").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Python that can import `module`, installing [`REQUIREMENTS`] into `target/test-venv` first
/// when needed. `Err` says why there is none.
pub async fn python(module: &str) -> Result<String, String> {
    static PYTHON: OnceCell<Result<String, String>> = OnceCell::const_new();
    let python = PYTHON
        .get_or_init(|| async {
            if let Ok(p) = std::env::var("EMPORIUM_TEST_PYTHON") {
                return Ok(p);
            }
            let venv = workspace().join("target/test-venv");
            let python = venv.join("bin/python").to_string_lossy().into_owned();
            let all = modules();
            if imports(&python, &all).await {
                return Ok(python);
            }
            let _lock = InstallLock::acquire(&workspace().join("target/test-venv.lock")).await;
            if imports(&python, &all).await {
                return Ok(python);
            }
            eprintln!(
                "installing {REQUIREMENTS} into {} for the test servers...",
                venv.display()
            );
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
            let requirements = workspace().join(REQUIREMENTS).to_string_lossy().into_owned();
            let args = ["install", "-q", "--disable-pip-version-check", "-r", &requirements];
            run(pip, args.iter().map(|a| (*a).to_owned()).collect()).await?;
            Ok(python)
        })
        .await
        .clone()?;
    if imports(&python, module).await {
        Ok(python)
    } else {
        Err(format!("{python} cannot import {module}"))
    }
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

/// A Python that can import `module` for the test server `what`, or `None` (the test is skipped)
/// when there is none outside CI; with `CI=true` a missing server fails the test.
pub async fn python_for(module: &str, what: &str) -> Option<String> {
    match python(module).await {
        Ok(p) => Some(p),
        Err(why) => {
            assert!(!crate::services::in_ci(), "CI=true but {what} cannot run: {why}");
            eprintln!("SKIPPED: no {what} ({why})");
            None
        }
    }
}

/// Starts `python script args…`, a test server that prints `ready <port>` once it listens, and
/// answers the process (killed when dropped) with that port.
pub async fn start_server(
    python: &str,
    script: &str,
    args: &[String],
    within: Duration,
) -> (tokio::process::Child, u16) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = Command::new(python)
        .arg(workspace().join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    let stdout = child.stdout.take().expect("server stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(within, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{script} ready within {within:?}"))
        .unwrap_or_else(|e| panic!("read {script}'s output: {e}"))
        .unwrap_or_else(|| panic!("{script} printed nothing"));
    let port = ready
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("unexpected {script} output {ready:?}"));
    (child, port)
}
