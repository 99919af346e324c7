//! `/health/live` (the process answers) and `/health/ready` (every dependency answers).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
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

#[derive(Debug, Serialize)]
struct CheckReport {
    status: &'static str,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct ReadyReport {
    status: &'static str,
    checks: BTreeMap<String, CheckReport>,
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
                    (Ok(()), _) => "up",
                    (Err(_), true) => "down",
                    (Err(_), false) => "degraded",
                },
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                error: result.err(),
            };
            (c.name(), report)
        });
        let checks: BTreeMap<_, _> = futures::future::join_all(runs).await.into_iter().collect();
        let all_up = checks.values().all(|c| c.status != "down");
        ReadyReport {
            status: if all_up { "ready" } else { "unavailable" },
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
    let status = if report.status == "ready" {
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
