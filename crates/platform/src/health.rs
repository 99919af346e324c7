//! `/health/live` (the process answers) and `/health/ready` (every dependency answers).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A dependency whose outage makes the process unready (a database, a cache, a broker).
#[async_trait::async_trait]
pub trait HealthCheck: Send + Sync {
    fn name(&self) -> String;
    /// An optional dependency (the cache) is reported as `degraded` without making the process
    /// unready: the app still answers, from the database.
    fn required(&self) -> bool {
        true
    }
    async fn check(&self) -> Result<(), String>;
}

#[derive(Clone, Default)]
pub struct Health {
    checks: Vec<Arc<dyn HealthCheck>>,
}

/// How one dependency answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Up,
    /// A required dependency failed: the process is unready.
    Down,
    /// An optional dependency failed: the process still answers.
    Degraded,
}

/// One dependency's line of the `/health/ready` report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    pub status: CheckStatus,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether every required dependency answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    Ready,
    Unavailable,
}

/// The `/health/ready` body (200 when `ready`, else 503), read back by the admin status page. In
/// a process serving several contexts the checks are named `<context>.<dependency>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyReport {
    pub status: Readiness,
    pub checks: BTreeMap<String, CheckReport>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_check(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.checks.push(check);
        self
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .with_state(self)
    }

    async fn report(&self) -> ReadyReport {
        let runs = self.checks.iter().map(|c| async move {
            let started = Instant::now();
            let result = match tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
            };
            let report = CheckReport {
                status: match (&result, c.required()) {
                    (Ok(()), _) => CheckStatus::Up,
                    (Err(_), true) => CheckStatus::Down,
                    (Err(_), false) => CheckStatus::Degraded,
                },
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                error: result.err(),
            };
            (c.name(), report)
        });
        let checks: BTreeMap<_, _> = futures::future::join_all(runs).await.into_iter().collect();
        let all_up = checks.values().all(|c| c.status != CheckStatus::Down);
        ReadyReport {
            status: if all_up {
                Readiness::Ready
            } else {
                Readiness::Unavailable
            },
            checks,
        }
    }
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "ops", responses((status = 200, description = "Alive")))]
pub async fn live() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "live" }))
}

/// Every required dependency (databases, broker) answers; an unreachable cache only degrades.
#[utoipa::path(get, path = "/health/ready", tag = "ops", responses(
    (status = 200, description = "Ready: every check is up"),
    (status = 503, description = "Not ready: the body names each failing dependency")))]
pub async fn ready(State(health): State<Health>) -> impl IntoResponse {
    let report = health.report().await;
    let status = if report.status == Readiness::Ready {
        StatusCode::OK
    } else {
        for (name, c) in &report.checks {
            if let Some(e) = &c.error {
                tracing::warn!(dependency = %name, error = %e, "readiness check failed");
            }
        }
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(live, ready, crate::metrics::render))]
struct OpsDoc;

/// The OpenAPI description of the health and metrics endpoints.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <OpsDoc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        name: &'static str,
        required: bool,
        result: Result<(), &'static str>,
    }

    #[async_trait::async_trait]
    impl HealthCheck for Fixed {
        fn name(&self) -> String {
            self.name.into()
        }
        fn required(&self) -> bool {
            self.required
        }
        async fn check(&self) -> Result<(), String> {
            self.result.map_err(str::to_owned)
        }
    }

    fn check(name: &'static str, required: bool, result: Result<(), &'static str>) -> Arc<dyn HealthCheck> {
        Arc::new(Fixed { name, required, result })
    }

    /// The status page reads this body back as a `ReadyReport`: the words on the wire stay as
    /// they were when it was built from strings.
    #[tokio::test]
    async fn the_ready_report_keeps_its_wire_form_and_reads_back() {
        let health = Health::new()
            .with_check(check("catalog.database", true, Ok(())))
            .with_check(check("cache", false, Err("refused")))
            .with_check(check("broker", true, Err("closed")));
        let wire = serde_json::to_value(health.report().await).expect("serialise");
        assert_eq!(wire["status"], "unavailable");
        assert_eq!(wire["checks"]["catalog.database"]["status"], "up");
        assert!(wire["checks"]["catalog.database"].get("error").is_none());
        assert!(wire["checks"]["catalog.database"]["latency_ms"].is_number());
        assert_eq!(wire["checks"]["cache"]["status"], "degraded");
        assert_eq!(wire["checks"]["broker"]["status"], "down");
        assert_eq!(wire["checks"]["broker"]["error"], "closed");

        let read: ReadyReport = serde_json::from_value(wire).expect("read back");
        assert_eq!(read.status, Readiness::Unavailable);
        assert_eq!(read.checks["cache"].status, CheckStatus::Degraded);
        assert_eq!(read.checks["broker"].error.as_deref(), Some("closed"));

        let healthy = Health::new().with_check(check("cache", false, Err("refused")));
        assert_eq!(healthy.report().await.status, Readiness::Ready);
    }
}
