//! The production reverse proxy (`emporium serve --service gateway`): each API path goes to its
//! context's process, bodies streamed both ways, with a timeout, retries of safe requests, and
//! a circuit breaker per upstream. Also the aggregates: readiness of every upstream, the merged
//! OpenAPI document and the docs page.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, BodyDataStream};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use platform::Problem;
use platform::config::{ConfigError, ConfigSource};
use platform::http::RequestContext;
use serde::Serialize;

use crate::breaker::{Admission, Breaker, BreakerPolicy};
use crate::cache::{EdgeCache, Key, Miss};
use crate::edge::{client_ip, payload_too_large};
use crate::forwarding::{Origin, has_body, retry_safe, upstream_request_headers};
use crate::routes::{Upstream, upstream_for};
use crate::upstream::{Base, CallError, IdleTimeoutBody, UpstreamClient, error_chain};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Proxy settings, read once at start-up.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Base URL of every context (`EMPORIUM_UPSTREAM_<CONTEXT>`), without a trailing slash.
    pub upstreams: BTreeMap<Upstream, String>,
    /// How long an upstream may take to start answering (`EMPORIUM_UPSTREAM_TIMEOUT_MS`); also
    /// the longest pause while a body streams.
    pub timeout: Duration,
    /// Extra attempts for safe requests (`EMPORIUM_UPSTREAM_RETRIES`).
    pub retries: u32,
    /// `EMPORIUM_BREAKER_FAILURES`, `EMPORIUM_BREAKER_OPEN_MS`.
    pub breaker: BreakerPolicy,
    /// `EMPORIUM_MAX_BODY_BYTES`: request bodies are counted as they stream.
    pub max_body_bytes: usize,
    /// `EMPORIUM_TRUSTED_PROXY_HOPS` (or `EMPORIUM_TRUST_FORWARDED_FOR`, one hop): the gateway
    /// itself sits behind that many proxies it trusts.
    pub trusted_proxy_hops: usize,
    /// `EMPORIUM_METRICS_TOKEN`: the bearer token `/metrics` asks for; without one it is not served.
    pub metrics_token: Option<String>,
    /// `EMPORIUM_GATEWAY_CACHE_MB`: the micro-cache's memory budget (0: no micro-cache).
    pub cache_bytes: usize,
    /// `EMPORIUM_GATEWAY_CACHE_TTL_MS`: the longest an answer is kept, whatever its `max-age`.
    pub cache_ttl: Duration,
}

impl GatewayConfig {
    pub fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        let mut upstreams = BTreeMap::new();
        for upstream in Upstream::ALL {
            let var = upstream.variable();
            let url = src.raw(&var).ok_or_else(|| {
                ConfigError::new(
                    &var,
                    format!(
                        "is required for the gateway: the base URL of the {} process (e.g. http://{}:{})",
                        upstream.name(),
                        upstream.name(),
                        8081 + Upstream::ALL.iter().position(|u| *u == upstream).unwrap_or(0)
                    ),
                )
            })?;
            let url = url.trim().trim_end_matches('/');
            if Base::parse(url).is_none() {
                return Err(ConfigError::new(
                    &var,
                    "must be an http:// base URL without a path (e.g. http://catalog:8082); the gateway \
                     speaks plain HTTP to the contexts (encrypt pod-to-pod traffic with a service mesh)",
                ));
            }
            upstreams.insert(upstream, url.to_owned());
        }
        Ok(Self {
            upstreams,
            timeout: Duration::from_millis(src.number_in("EMPORIUM_UPSTREAM_TIMEOUT_MS", 10_000, 100..=600_000)?),
            retries: src.number_in("EMPORIUM_UPSTREAM_RETRIES", 2, 0..=5)? as u32,
            breaker: BreakerPolicy {
                failures: src.number_in("EMPORIUM_BREAKER_FAILURES", 5, 1..=1000)? as u32,
                open_for: Duration::from_millis(src.number_in("EMPORIUM_BREAKER_OPEN_MS", 10_000, 100..=600_000)?),
            },
            max_body_bytes: src.number_in("EMPORIUM_MAX_BODY_BYTES", 1024 * 1024, 1024..=64 * 1024 * 1024)? as usize,
            trusted_proxy_hops: platform::config::trusted_proxy_hops(src)?,
            metrics_token: platform::config::metrics_token(src),
            cache_bytes: (src.number_in("EMPORIUM_GATEWAY_CACHE_MB", 16, 0..=4096)? << 20) as usize,
            cache_ttl: Duration::from_millis(src.number_in("EMPORIUM_GATEWAY_CACHE_TTL_MS", 1000, 0..=60_000)?),
        })
    }

    pub fn upstream_url(&self, upstream: Upstream) -> &str {
        self.upstreams.get(&upstream).map_or("", String::as_str)
    }
}

struct Proxy {
    config: GatewayConfig,
    /// The upstreams' base URLs, parsed once (parsing a URL per request showed in profiles).
    bases: BTreeMap<Upstream, Base>,
    http: UpstreamClient,
    breakers: BTreeMap<Upstream, Breaker>,
    durations: BTreeMap<Upstream, Durations>,
    cache: Option<EdgeCache>,
}

/// The proxy and its aggregates: `/api/...` and `/.well-known/jwks.json` to the contexts,
/// `/health/live`, `/health/ready` (every upstream's readiness), `/metrics`, `/openapi.json`
/// (`doc`, the merged document of every context, as JSON) and `/docs`. Wrap it in the platform
/// stack and the edge like any app; other routes (the web pages) can be merged in.
pub fn proxy_router(config: GatewayConfig, doc: String) -> Router {
    describe_metrics();
    let metrics_token = config.metrics_token.clone();
    let http = UpstreamClient::new(config.timeout.min(Duration::from_secs(3)));
    let breakers = Upstream::ALL
        .into_iter()
        .map(|u| (u, Breaker::new(u.name(), config.breaker)))
        .collect();
    let bases = config
        .upstreams
        .iter()
        .filter_map(|(upstream, url)| Some((*upstream, Base::parse(url)?)))
        .collect();
    let durations = Upstream::ALL.into_iter().map(|u| (u, Durations::new(u))).collect();
    let cache = EdgeCache::new(config.cache_bytes, config.cache_ttl);
    let proxy = Arc::new(Proxy {
        cache,
        config,
        bases,
        http,
        breakers,
        durations,
    });
    let api = Router::new()
        .route("/api/{*rest}", any(forward))
        .route("/.well-known/jwks.json", get(forward))
        .with_state(proxy.clone());
    let ops = Router::new()
        .route("/health/live", get(platform::health::live))
        .route("/health/ready", get(ready))
        .with_state(proxy)
        .merge(platform::metrics::router(metrics_token))
        .merge(platform::docs::router(doc));
    platform::http::tag_routes(api, "gateway").merge(platform::http::tag_routes(ops, "platform"))
}

fn describe_metrics() {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_histogram!(
            "gateway_upstream_duration_seconds",
            metrics::Unit::Seconds,
            "Time until an upstream context answered (headers), by upstream and outcome (status class, timeout, unreachable, breaker_open)."
        );
        metrics::describe_gauge!(
            "gateway_breaker_state",
            "Circuit breaker per upstream: 0 closed, 1 half-open (probing), 2 open (failing fast)."
        );
        crate::cache::describe_metrics();
    });
}

async fn forward(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    let path = req.uri().path();
    match upstream_for(path) {
        Some(upstream) => {
            use opentelemetry::trace::TraceContextExt as _;
            use tracing::Instrument as _;
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            let request_trace = RequestContext::with(|c| c.trace.clone());
            let spanned =
                request_trace.as_ref().is_some_and(|t| t.is_sampled()) || platform::telemetry::request_spans_logged();
            if !spanned {
                // Neither a recorded trace nor a log line would show a client span: the hop
                // goes without one (making, entering and closing it was 8% of a proxied read's
                // instructions), and the upstream's span names the gateway's request span as
                // its parent, in the same trace.
                let traceparent = request_trace
                    .filter(|t| t.is_valid())
                    .map(|t| platform::http::w3c_trace_header(&t));
                return proxy.forward(upstream, req, traceparent).await;
            }
            // The gateway's client side of the hop (retries included): the `traceparent` sent
            // upstream names this span, so the upstream's server span is its child.
            let span = tracing::info_span!(
                "http.client",
                otel.name = tracing::field::Empty,
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                peer.service = upstream.name(),
                http.response.status_code = tracing::field::Empty,
            );
            let span_context = span.context().span().span_context().clone();
            let traceparent = span_context
                .is_valid()
                .then(|| platform::http::w3c_trace_header(&span_context));
            let method = req.method().clone();
            let response = proxy.forward(upstream, req, traceparent).instrument(span.clone()).await;
            // Its name and outcome are read only in a recorded trace (no log line inside the
            // span comes after them): formatting and recording them for every request was 6% of
            // a proxied read's instructions.
            if span_context.is_sampled() {
                span.record("otel.name", format!("{method} {}", upstream.name()));
                span.record("http.response.status_code", response.status().as_u16());
                if response.status().is_server_error() {
                    span.record("otel.status_code", "ERROR");
                }
            }
            response
        }
        None => Problem::not_found(format!("no API at {path}; see /docs for every route")).into_response(),
    }
}

/// Why an attempt produced no usable answer.
enum Failure {
    BreakerOpen(Duration),
    Timeout,
    Unreachable,
    BodyTooLarge,
    Broken(String),
}

impl Proxy {
    /// `traceparent`: the gateway's client span's when it has one, else its request span's
    /// (`None` when tracing is off: the client's own goes on as it came).
    async fn forward(&self, upstream: Upstream, req: Request, traceparent: Option<String>) -> Response {
        let name = upstream.name();
        let (mut parts, body) = req.into_parts();
        let kept = self.cache.as_ref().and_then(|cache| {
            let path_and_query = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
            Some((cache, Key::of(upstream, &parts.method, path_and_query, &parts.headers)?))
        });
        let kept = match kept {
            Some((cache, key)) => match cache.get(&key, Instant::now()) {
                Ok(hit) => return hit,
                Err(miss) => Some((key, miss)),
            },
            None => None,
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.config.max_body_bytes as u64) {
            return payload_too_large(self.config.max_body_bytes).into_response();
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let request_id = RequestContext::with(|c| c.request_id.clone())
            .or_else(|| {
                parts
                    .headers
                    .get(platform::http::X_REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let Some((base, uri)) = self
            .bases
            .get(&upstream)
            .and_then(|base| Some((base, base.join(parts.uri.path_and_query())?)))
        else {
            return Problem::internal(format!("no base URL for {name}")).into_response();
        };
        let origin = Origin {
            client: client_ip(&parts.headers, peer, self.config.trusted_proxy_hops),
            trust_forwarded_for: self.config.trusted_proxy_hops > 0,
            request_id: &request_id,
            traceparent,
            host: base.host().clone(),
        };
        let with_body = has_body(&parts.method, &parts.headers);
        let headers = upstream_request_headers(std::mem::take(&mut parts.headers), &origin);
        let body = with_body.then(|| UnreadBody::new(body, self.config.max_body_bytes));
        let breaker = &self.breakers[&upstream];

        // Retries share the one upstream deadline: a client waits at most
        // EMPORIUM_UPSTREAM_TIMEOUT_MS for an answer's head, however many attempts it takes
        // (three full timeouts used to run into the 30 s request timeout and end as a 503).
        let deadline = Instant::now() + self.config.timeout;
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let budget = deadline.saturating_duration_since(started);
            let result = if budget.is_zero() {
                Err(Failure::Timeout)
            } else {
                self.attempt(breaker, &parts.method, &uri, &headers, body.as_ref(), budget)
                    .await
            };
            self.durations[&upstream].record(outcome(&result), started.elapsed());
            let again = attempt < self.config.retries
                && match &result {
                    Ok(response) => upstream_failed(response.status()) && retry_safe(&parts.method, with_body),
                    // A timeout has spent the whole budget: another try could only time out too.
                    Err(Failure::Timeout) => false,
                    Err(Failure::Broken(_)) => retry_safe(&parts.method, with_body),
                    // Refused connections never reached the upstream: any request may be sent
                    // again, as long as no byte of its body was read.
                    Err(Failure::Unreachable) => body.as_ref().is_none_or(UnreadBody::unread),
                    Err(Failure::BreakerOpen(_) | Failure::BodyTooLarge) => false,
                };
            let backoff = Duration::from_millis(50 << (attempt + 1));
            if again && Instant::now() + backoff < deadline {
                attempt += 1;
                tokio::time::sleep(backoff).await;
                continue;
            }
            return match result {
                Ok(response) => {
                    if let Some(cache) = &self.cache
                        && !parts.method.is_safe()
                        && (response.status().is_success() || response.status().is_redirection())
                    {
                        // A write this context accepted: what was kept of it may be out of date.
                        cache.forget(upstream);
                    }
                    self.relay(response, kept).await
                }
                Err(failure) => self.failure_problem(upstream, failure).into_response(),
            };
        }
    }

    async fn attempt(
        &self,
        breaker: &Breaker,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Option<&UnreadBody>,
        budget: Duration,
    ) -> Result<hyper::Response<Incoming>, Failure> {
        if let Admission::Rejected { retry_after } = breaker.admit() {
            return Err(Failure::BreakerOpen(retry_after));
        }
        let request_body = body.map_or_else(Body::empty, |b| Body::from_stream(b.stream()));
        let result = self
            .http
            .call(method.clone(), uri.clone(), headers.clone(), request_body, budget)
            .await;
        let result = match result {
            Ok(response) => Ok(response),
            Err(_) if body.is_some_and(UnreadBody::over_limit) => Err(Failure::BodyTooLarge),
            Err(CallError::Timeout) => Err(Failure::Timeout),
            Err(CallError::Connect(_)) => Err(Failure::Unreachable),
            Err(CallError::Other(e)) => Err(Failure::Broken(e)),
        };
        match &result {
            Ok(response) => breaker.record(!upstream_failed(response.status())),
            // The client's fault, not the upstream's.
            Err(Failure::BodyTooLarge) => {}
            Err(_) => breaker.record(false),
        }
        result
    }

    /// The upstream's answer as ours: status, end-to-end headers, and the body (which may pause
    /// for at most the upstream timeout between pieces). A small answer to a read that may be
    /// kept (`kept`: where, and the lookup that missed) is offered to the micro-cache.
    async fn relay(&self, response: hyper::Response<Incoming>, kept: Option<(Key, Miss)>) -> Response {
        let (mut parts, incoming) = response.into_parts();
        crate::forwarding::strip_hop_by_hop(&mut parts.headers);
        let small = incoming.size_hint().exact().is_some_and(|n| n <= BUFFERED_BODY_BYTES);
        let body = if small {
            match tokio::time::timeout(self.config.timeout, incoming.collect()).await {
                Ok(Ok(collected)) => {
                    let bytes = collected.to_bytes();
                    if let (Some(cache), Some((key, miss))) = (&self.cache, kept) {
                        cache.put(key, miss, parts.status, &parts.headers, &bytes, Instant::now());
                    }
                    Body::from(bytes)
                }
                Ok(Err(e)) => return broken_off(&error_chain(&e)),
                Err(_) => return broken_off("no complete answer within the upstream timeout"),
            }
        } else {
            Body::new(IdleTimeoutBody::new(incoming, self.config.timeout))
        };
        let mut out = Response::new(body);
        *out.status_mut() = parts.status;
        *out.headers_mut() = parts.headers;
        out
    }

    fn failure_problem(&self, upstream: Upstream, failure: Failure) -> Problem {
        let name = upstream.name();
        match failure {
            Failure::BreakerOpen(wait) => Problem::unavailable(format!(
                "the {name} service is failing; calls to it are paused (circuit breaker open)"
            ))
            .with_retry_after(wait.as_secs().max(1)),
            Failure::Timeout => Problem::new(StatusCode::GATEWAY_TIMEOUT, "upstream-timeout", "Upstream timed out")
                .with_detail(format!(
                    "the {name} service did not answer within {} ms",
                    self.config.timeout.as_millis()
                )),
            Failure::Unreachable => {
                tracing::warn!(upstream = name, "upstream unreachable");
                Problem::unavailable(format!("the {name} service is unreachable; retry shortly")).with_retry_after(1)
            }
            Failure::BodyTooLarge => payload_too_large(self.config.max_body_bytes),
            Failure::Broken(error) => {
                tracing::warn!(upstream = name, %error, "upstream call failed");
                Problem::new(StatusCode::BAD_GATEWAY, "bad-gateway", "Bad gateway")
                    .with_detail(format!("the {name} service gave no valid answer"))
            }
        }
    }
}

/// Statuses that say the upstream itself is in trouble (they count against its breaker and
/// make a safe request worth another try); every other status is an answer to pass on.
fn upstream_failed(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The `outcome` label of `gateway_upstream_duration_seconds`.
const OUTCOMES: [&str; 10] = [
    "1xx",
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "breaker_open",
    "timeout",
    "unreachable",
    "body_too_large",
    "error",
];

/// An attempt's outcome, as an index into [`OUTCOMES`].
fn outcome(result: &Result<hyper::Response<Incoming>, Failure>) -> usize {
    match result {
        Ok(response) => status_outcome(response.status()),
        Err(Failure::BreakerOpen(_)) => 5,
        Err(Failure::Timeout) => 6,
        Err(Failure::Unreachable) => 7,
        Err(Failure::BodyTooLarge) => 8,
        Err(Failure::Broken(_)) => 9,
    }
}

/// An answer's status class, as an index into [`OUTCOMES`] (whose first entries are the
/// platform's status classes).
fn status_outcome(status: StatusCode) -> usize {
    platform::metrics::status_class_index(status)
}

/// One upstream's `gateway_upstream_duration_seconds` series, by outcome, each kept once first
/// recorded (see `platform::metrics::kept`).
struct Durations {
    upstream: &'static str,
    series: [OnceLock<metrics::Histogram>; OUTCOMES.len()],
}

impl Durations {
    fn new(upstream: Upstream) -> Self {
        Self {
            upstream: upstream.name(),
            series: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn record(&self, outcome: usize, elapsed: Duration) {
        let series = platform::metrics::kept(&self.series[outcome], || {
            metrics::histogram!(
                "gateway_upstream_duration_seconds",
                "upstream" => self.upstream,
                "outcome" => OUTCOMES[outcome]
            )
        });
        if let Some(series) = series {
            series.record(elapsed.as_secs_f64());
        }
    }
}

/// Bodies up to this size with a declared length are read whole before answering: one write to
/// the client instead of a stream of them. Anything else streams through as it arrives.
const BUFFERED_BODY_BYTES: u64 = 64 * 1024;

fn broken_off(error: &str) -> Response {
    tracing::warn!(%error, "upstream answer broke off");
    Problem::new(StatusCode::BAD_GATEWAY, "bad-gateway", "Bad gateway")
        .with_detail("the upstream's answer broke off")
        .into_response()
}

/// A request body handed to one attempt at a time, counted against the size limit. It stays
/// here until an attempt first reads from it, so an attempt that failed before reading (a
/// refused connection) leaves it for the next.
struct UnreadBody {
    slot: Arc<Mutex<Option<BodyDataStream>>>,
    over_limit: Arc<AtomicBool>,
    limit: usize,
}

impl UnreadBody {
    fn new(body: Body, limit: usize) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Some(body.into_data_stream()))),
            over_limit: Arc::new(AtomicBool::new(false)),
            limit,
        }
    }

    fn unread(&self) -> bool {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    fn over_limit(&self) -> bool {
        self.over_limit.load(Ordering::Relaxed)
    }

    fn stream(&self) -> CountedBody {
        CountedBody {
            slot: self.slot.clone(),
            body: None,
            read: 0,
            limit: self.limit,
            over_limit: self.over_limit.clone(),
        }
    }
}

struct CountedBody {
    slot: Arc<Mutex<Option<BodyDataStream>>>,
    body: Option<BodyDataStream>,
    read: usize,
    limit: usize,
    over_limit: Arc<AtomicBool>,
}

impl Stream for CountedBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.body.is_none() {
            this.body = this.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(Some(Err("the request body was already sent".into())));
        };
        match body.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.read += chunk.len();
                if this.read > this.limit {
                    this.over_limit.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err("the request body exceeds EMPORIUM_MAX_BODY_BYTES".into())));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[derive(Debug, Serialize)]
struct UpstreamReport {
    status: &'static str,
    url: String,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    breaker: &'static str,
}

#[derive(Debug, Serialize)]
struct ReadyReport {
    status: &'static str,
    upstreams: BTreeMap<&'static str, UpstreamReport>,
}

const READY_TIMEOUT: Duration = Duration::from_secs(2);
static READY_PATH: PathAndQuery = PathAndQuery::from_static("/health/ready");

/// Ready when every upstream reports ready on its own `/health/ready`; the body lists each.
async fn ready(State(proxy): State<Arc<Proxy>>) -> Response {
    let checks = Upstream::ALL.into_iter().map(|upstream| {
        let proxy = proxy.clone();
        async move {
            let uri = proxy.bases.get(&upstream).and_then(|base| base.join(Some(&READY_PATH)));
            let started = Instant::now();
            let answer = match uri {
                Some(uri) => proxy
                    .http
                    .call(Method::GET, uri, HeaderMap::new(), Body::empty(), READY_TIMEOUT)
                    .await
                    .map(|answer| answer.status()),
                None => Err(CallError::Other("no base URL".to_owned())),
            };
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            let (status, http_status, error) = match answer {
                Ok(s) if s.is_success() => ("up", Some(s.as_u16()), None),
                Ok(s) => (
                    "down",
                    Some(s.as_u16()),
                    Some(format!("its readiness check answered {s}")),
                ),
                Err(CallError::Timeout) => (
                    "down",
                    None,
                    Some(format!("no answer within {} ms", READY_TIMEOUT.as_millis())),
                ),
                Err(CallError::Connect(_)) => ("down", None, Some("unreachable".to_owned())),
                Err(CallError::Other(e)) => ("down", None, Some(e)),
            };
            let breaker = match proxy.breakers[&upstream].state() {
                crate::breaker::State::Closed { .. } => "closed",
                crate::breaker::State::HalfOpen { .. } => "half-open",
                crate::breaker::State::Open { .. } => "open",
            };
            (
                upstream.name(),
                UpstreamReport {
                    status,
                    url: proxy.config.upstream_url(upstream).to_owned(),
                    latency_ms,
                    http_status,
                    error,
                    breaker,
                },
            )
        }
    });
    let upstreams: BTreeMap<_, _> = futures::future::join_all(checks).await.into_iter().collect();
    let all_up = upstreams.values().all(|u| u.status == "up");
    for (name, u) in &upstreams {
        if let Some(e) = &u.error {
            tracing::warn!(upstream = %name, error = %e, "upstream not ready");
        }
    }
    let report = ReadyReport {
        status: if all_up { "ready" } else { "unavailable" },
        upstreams,
    };
    let status = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(pairs: &[(&str, &str)]) -> ConfigSource {
        ConfigSource::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).expect("source")
    }

    fn all_upstreams() -> Vec<(String, String)> {
        Upstream::ALL
            .iter()
            .enumerate()
            .map(|(i, u)| (u.variable(), format!("http://127.0.0.1:{}/", 18081 + i)))
            .collect()
    }

    #[test]
    fn every_upstream_is_required_and_named_when_missing() {
        let err = GatewayConfig::from_source(&src(&[])).expect_err("nothing set");
        assert_eq!(err.var, "EMPORIUM_UPSTREAM_IDENTITY");
        let mut pairs = all_upstreams();
        pairs.retain(|(k, _)| k != "EMPORIUM_UPSTREAM_PAYMENTS");
        let s = ConfigSource::from_pairs(pairs).expect("source");
        assert_eq!(
            GatewayConfig::from_source(&s).expect_err("payments missing").var,
            "EMPORIUM_UPSTREAM_PAYMENTS"
        );
    }

    #[test]
    fn upstream_urls_are_bases_and_defaults_apply() {
        let s = ConfigSource::from_pairs(all_upstreams()).expect("source");
        let c = GatewayConfig::from_source(&s).expect("config");
        assert_eq!(c.upstream_url(Upstream::Catalog), "http://127.0.0.1:18082");
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.retries, 2);
        assert_eq!(c.breaker.failures, 5);
        assert_eq!(c.breaker.open_for, Duration::from_secs(10));

        for bad in [
            "catalog:8082",
            "http://catalog:8082/api",
            "ftp://catalog",
            "https://catalog:8082",
        ] {
            let mut pairs = all_upstreams();
            pairs.push(("EMPORIUM_UPSTREAM_CATALOG".into(), bad.into()));
            let s = ConfigSource::from_pairs(pairs).expect("source");
            assert_eq!(
                GatewayConfig::from_source(&s).expect_err(bad).var,
                "EMPORIUM_UPSTREAM_CATALOG"
            );
        }
    }

    #[test]
    fn answers_are_labelled_by_status_class() {
        assert_eq!(OUTCOMES[..5], platform::metrics::STATUS_CLASSES);
        for (status, label) in [
            (100, "1xx"),
            (204, "2xx"),
            (304, "3xx"),
            (429, "4xx"),
            (503, "5xx"),
            (599, "5xx"),
        ] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(OUTCOMES[status_outcome(status)], label, "{status}");
        }
    }

    #[test]
    fn only_gateway_trouble_statuses_count_as_upstream_failures() {
        assert!(upstream_failed(StatusCode::SERVICE_UNAVAILABLE));
        assert!(upstream_failed(StatusCode::BAD_GATEWAY));
        assert!(!upstream_failed(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!upstream_failed(StatusCode::NOT_FOUND));
        assert!(!upstream_failed(StatusCode::TOO_MANY_REQUESTS));
    }

    #[tokio::test]
    async fn an_unread_body_stays_for_the_next_attempt_and_is_counted() {
        let body = UnreadBody::new(Body::from("0123456789"), 8);
        let first = body.stream();
        drop(first);
        assert!(body.unread(), "an attempt that never read leaves the body");
        let chunks: Vec<_> = body.stream().collect().await;
        assert!(!body.unread());
        assert!(chunks.iter().any(Result::is_err), "10 bytes exceed a limit of 8");
        assert!(body.over_limit());

        let small = UnreadBody::new(Body::from("abc"), 8);
        let chunks: Vec<Bytes> = small.stream().map(|c| c.expect("chunk")).collect().await;
        assert_eq!(chunks.concat(), b"abc");
        assert!(!small.over_limit());
    }
}
