//! Prometheus metrics: one recorder per process, HTTP request metrics labelled by service, method,
//! route template and status class, process metrics and build info, all served at `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const HTTP_REQUESTS: &str = "http_requests_total";
const HTTP_DURATION: &str = "http_request_duration_seconds";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

struct Recorder {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static RECORDER: OnceLock<Recorder> = OnceLock::new();

/// Installs the process-wide recorder (idempotent: tests build many apps in one process).
pub fn install() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), LATENCY_BUCKETS)
                .and_then(|b| b.install_recorder())
                .unwrap_or_else(|e| {
                    // Another recorder is already installed (only possible in odd test setups):
                    // keep serving, with a handle that renders this builder's empty registry.
                    tracing::warn!(error = %e, "metrics recorder already installed");
                    PrometheusBuilder::new().build_recorder().handle()
                });
            describe();
            let process = metrics_process::Collector::default();
            process.describe();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let upkeep = handle.clone();
                rt.spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        upkeep.run_upkeep();
                    }
                });
            }
            Recorder { handle, process }
        })
        .handle
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests handled, by service, method, route template and status class."
    );
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency, by service, method, route template and status class."
    );
    metrics::describe_gauge!("http_requests_in_flight", "HTTP requests being handled right now.");
    metrics::describe_counter!(
        "rate_limited_requests_total",
        "Requests refused with 429 by a per-address rate limit."
    );
    metrics::describe_gauge!("emporium_build_info", "Build information; the value is always 1.");
    metrics::gauge!("emporium_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

pub(crate) fn record_http_request(
    service: &'static str,
    method: &str,
    route: &str,
    status: StatusCode,
    elapsed: Duration,
) {
    let labels = [
        ("service", service.to_owned()),
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status_class(status).to_owned()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
}

/// `GET /metrics` in the Prometheus text format.
pub fn router() -> Router {
    install();
    Router::new().route("/metrics", get(render))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Metrics", content_type = "text/plain")))]
pub async fn render() -> impl IntoResponse {
    install();
    let rec = RECORDER.get().expect("installed above");
    rec.process.collect();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        rec.handle.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(status_class(StatusCode::OK), "2xx");
        assert_eq!(status_class(StatusCode::NOT_FOUND), "4xx");
        assert_eq!(status_class(StatusCode::BAD_GATEWAY), "5xx");
    }
}
