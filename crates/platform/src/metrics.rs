//! Prometheus metrics: one recorder per process, HTTP request metrics labelled by service, method,
//! route template and status class, process metrics and build info, all served at `/metrics`.

use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::Problem;

const HTTP_REQUESTS: &str = "http_requests_total";
const HTTP_DURATION: &str = "http_request_duration_seconds";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Calls that leave the process (a payment provider, an SMTP server) or wait on one: up to a minute.
const REMOTE_CALL_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Money in minor units (cents): from 1.00 to 10,000.00.
const MONEY_BUCKETS: &[f64] = &[
    100.0,
    500.0,
    1_000.0,
    2_500.0,
    5_000.0,
    10_000.0,
    25_000.0,
    50_000.0,
    100_000.0,
    250_000.0,
    500_000.0,
    1_000_000.0,
];

/// How many items one batched write took (invoice numbers): 1 means no batching happened.
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Every histogram the platform and the contexts record, with its buckets. A metric recorded with
/// `metrics::histogram!` but missing here is exported as a summary, whose quantiles cannot be
/// aggregated across replicas: add it here.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    (HTTP_DURATION, LATENCY_BUCKETS),
    ("service_client_duration_seconds", LATENCY_BUCKETS),
    ("gateway_upstream_duration_seconds", LATENCY_BUCKETS),
    ("order_saga_step_duration_seconds", LATENCY_BUCKETS),
    ("events_handle_duration_seconds", LATENCY_BUCKETS),
    ("db_pool_acquire_duration_seconds", LATENCY_BUCKETS),
    ("payment_provider_call_duration_seconds", REMOTE_CALL_BUCKETS),
    ("notifications_delivery_duration_seconds", REMOTE_CALL_BUCKETS),
    ("webhook_attempt_duration_seconds", REMOTE_CALL_BUCKETS),
    ("order_value_minor_units", MONEY_BUCKETS),
    ("payment_amount", MONEY_BUCKETS),
    ("order_invoice_batch_size", BATCH_SIZE_BUCKETS),
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
            let handle = HISTOGRAMS
                .iter()
                .try_fold(PrometheusBuilder::new(), |b, (name, buckets)| {
                    b.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                })
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
    crate::db::describe_metrics();
    metrics::describe_gauge!("emporium_build_info", "Build information; the value is always 1.");
    metrics::gauge!("emporium_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// The `status` label: an answer's class.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// An answer's class, as an index into [`STATUS_CLASSES`].
pub fn status_class_index(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, STATUS_CLASSES.len()) - 1
}

const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "other",
];

fn method_index(method: &str) -> usize {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

/// The method as a label: the standard ones by name, anything a client makes up as `other`
/// (each invented method would otherwise be a new set of series).
pub fn method_label(method: &str) -> &'static str {
    METHODS[method_index(method)]
}

/// The request counter and latency histogram of one route, per method and status class, made
/// when first recorded.
type RouteSeries = [[OnceLock<(Counter, Histogram)>; STATUS_CLASSES.len()]; METHODS.len()];

/// A service's routes, by template.
type Routes = foldhash::HashMap<Box<str>, Arc<RouteSeries>>;

/// Every route's series, by service and route template. Naming a labelled series through the
/// registry (`metrics::counter!(name, &labels)`) copies its four labels and hashes them, twice a
/// request; a handle kept here is one atomic add. Keyed by the code's own names, never a client's,
/// so a fast hash needs no defence against chosen collisions.
static ROUTE_SERIES: LazyLock<RwLock<foldhash::HashMap<&'static str, Routes>>> = LazyLock::new(RwLock::default);

fn route_series(service: &'static str, route: &str) -> Arc<RouteSeries> {
    let known = crate::sync::read(&ROUTE_SERIES)
        .get(service)
        .and_then(|routes| routes.get(route))
        .cloned();
    known.unwrap_or_else(|| {
        let mut all = crate::sync::write(&ROUTE_SERIES);
        all.entry(service)
            .or_default()
            .entry(route.into())
            .or_insert_with(|| Arc::new(std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new()))))
            .clone()
    })
}

/// Whether this process records metrics: handles made before the recorder is installed would
/// stay no-ops, so none are kept until it is.
fn recording() -> bool {
    RECORDER.get().is_some()
}

/// The metric handle kept in `cell`, made by `make` on first use once the recorder is installed
/// (`None` before: a handle made then would stay a no-op). Naming a labelled series through the
/// registry copies and hashes its labels on every call; a kept handle is one atomic operation.
pub fn kept<T>(cell: &OnceLock<T>, make: impl FnOnce() -> T) -> Option<&T> {
    recording().then(|| cell.get_or_init(make))
}

pub(crate) fn record_http_request(
    service: &'static str,
    method: &str,
    route: &str,
    status: StatusCode,
    elapsed: Duration,
) {
    if !recording() {
        return;
    }
    let (method, status) = (method_index(method), status_class_index(status));
    let series = route_series(service, route);
    let (requests, duration) = series[method][status].get_or_init(|| {
        let labels = [
            ("service", service.to_owned()),
            ("method", METHODS[method].to_owned()),
            ("route", route.to_owned()),
            ("status", STATUS_CLASSES[status].to_owned()),
        ];
        (
            metrics::counter!(HTTP_REQUESTS, &labels),
            metrics::histogram!(HTTP_DURATION, &labels),
        )
    });
    requests.increment(1);
    duration.record(elapsed.as_secs_f64());
}

/// `http_requests_in_flight`, once the recorder is installed.
pub(crate) fn requests_in_flight() -> Option<&'static Gauge> {
    static GAUGE: OnceLock<Gauge> = OnceLock::new();
    kept(&GAUGE, || metrics::gauge!("http_requests_in_flight"))
}

/// `GET /metrics` in the Prometheus text format, for scrapers holding `token`
/// (`EMPORIUM_METRICS_TOKEN`, sent as `Authorization: Bearer <token>`). The figures (orders,
/// payments, login outcomes) are business data: without a configured token the route refuses
/// everyone.
pub fn router(token: Option<String>) -> Router {
    install();
    let token: Option<Arc<str>> = token.filter(|t| !t.trim().is_empty()).map(|t| Arc::from(t.trim()));
    Router::new().route("/metrics", get(render)).with_state(token)
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    security(("metrics_token" = [])),
    responses(
        (status = 200, description = "Metrics", content_type = "text/plain"),
        (status = 401, description = "No or wrong `Authorization: Bearer <EMPORIUM_METRICS_TOKEN>`", body = crate::Problem, content_type = "application/problem+json"),
        (status = 403, description = "No EMPORIUM_METRICS_TOKEN is configured: metrics are not served", body = crate::Problem, content_type = "application/problem+json"),
    ))]
pub async fn render(State(token): State<Option<Arc<str>>>, headers: HeaderMap) -> Response {
    if let Err(refused) = check_scrape_token(token.as_deref(), &headers) {
        return refused;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        render_text(),
    )
        .into_response()
}

/// The scrape token check of `/metrics` (and the console's endpoints): 403 without a configured
/// token, 401 without the right bearer.
pub(crate) fn check_scrape_token(expected: Option<&str>, headers: &HeaderMap) -> Result<(), Response> {
    let Some(expected) = expected else {
        return Err(Problem::forbidden(
            "not served without a scrape token: set EMPORIUM_METRICS_TOKEN and send it as \
             `Authorization: Bearer <token>`",
        )
        .into_response());
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    if !offered.is_some_and(|t| same_secret(t.as_bytes(), expected.as_bytes())) {
        return Err(
            Problem::unauthorized("send the metrics scrape token (EMPORIUM_METRICS_TOKEN) as a bearer token")
                .into_response(),
        );
    }
    Ok(())
}

/// This process's metrics in the text format, without the token check (for code in the same
/// process, e.g. the console's charts in embedded mode).
pub fn render_text() -> String {
    install();
    let rec = RECORDER.get().expect("installed above");
    rec.process.collect();
    crate::db::report_pools();
    rec.handle.render()
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_and_methods() {
        let class = |status| STATUS_CLASSES[status_class_index(status)];
        assert_eq!(class(StatusCode::CONTINUE), "1xx");
        assert_eq!(class(StatusCode::OK), "2xx");
        assert_eq!(class(StatusCode::NOT_MODIFIED), "3xx");
        assert_eq!(class(StatusCode::NOT_FOUND), "4xx");
        assert_eq!(class(StatusCode::BAD_GATEWAY), "5xx");
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("TRACE"), "TRACE");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(method_label("get"), "other", "methods are case-sensitive");
    }

    #[tokio::test]
    async fn each_route_method_and_status_class_counts_in_its_own_series() {
        let handle = install();
        let record = |method, route, status| {
            record_http_request("unit", method, route, status, Duration::from_millis(2));
        };
        record("GET", "/unit/{id}", StatusCode::OK);
        record("GET", "/unit/{id}", StatusCode::NO_CONTENT);
        record("GET", "/unit/{id}", StatusCode::NOT_FOUND);
        record("BREW", "/unit/{id}", StatusCode::OK);
        record("GET", "/unit", StatusCode::OK);
        let text = handle.render();
        for (series, count) in [
            (r#"method="GET",route="/unit/{id}",status="2xx"} "#, 2),
            (r#"method="GET",route="/unit/{id}",status="4xx"} "#, 1),
            (r#"method="other",route="/unit/{id}",status="2xx"} "#, 1),
            (r#"method="GET",route="/unit",status="2xx"} "#, 1),
        ] {
            let line = format!(r#"http_requests_total{{service="unit",{series}{count}"#);
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(
            text.contains(
                r#"http_request_duration_seconds_count{service="unit",method="GET",route="/unit/{id}",status="2xx"} 2"#
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn metrics_need_the_configured_token() {
        use tower::ServiceExt;
        let get = |router: Router, auth: Option<&'static str>| async move {
            let mut req = axum::http::Request::get("/metrics");
            if let Some(auth) = auth {
                req = req.header(header::AUTHORIZATION, auth);
            }
            router
                .oneshot(req.body(axum::body::Body::empty()).expect("request"))
                .await
                .expect("response")
                .status()
        };
        assert_eq!(get(router(None), Some("Bearer x")).await, StatusCode::FORBIDDEN);
        assert_eq!(get(router(Some(" ".into())), None).await, StatusCode::FORBIDDEN);
        let token = Some("s3cret".to_owned());
        assert_eq!(get(router(token.clone()), None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            get(router(token.clone()), Some("Bearer wrong")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(router(token.clone()), Some("Basic s3cret")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(get(router(token), Some("bearer s3cret")).await, StatusCode::OK);
    }

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("FOOBAR1"), "other");
        assert_eq!(method_label("get"), "other");
    }
}
