//! The HTTP stack every context shares: request ids, trace spans, access logs, metrics, timeouts,
//! body limits, panics turned into problems, JSON/query extractors that answer with problem+json,
//! and a server with graceful shutdown.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::problem::{FieldError, Problem};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The request's trace id (32 hex digits), so a user's bug report leads to the trace.
pub const X_TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");
/// W3C Trace Context `traceparent`, which a caller sends to have the request join its trace.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// W3C Trace Context Level 2 `traceresponse`: `00-<trace id>-<server span id>-<flags>`.
pub const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// How many headers the platform stack (request id, trace, `nosniff`) and the edge (security and
/// rate-limit headers) may add to a handler's answer.
pub const RESPONSE_HEADERS_ADDED: usize = 12;

tokio::task_local! {
    static REQUEST_CONTEXT: RequestContext;
}

/// What every part of a request's handling may want to know about it, without threading it
/// through every signature (problems use it for `instance` and `request_id`).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub path: String,
    /// The request span's trace context (invalid when tracing is off): what a call made for
    /// the request without a span of its own passes on as `traceparent`.
    pub trace: opentelemetry::trace::SpanContext,
}

impl RequestContext {
    pub fn current() -> Option<Self> {
        REQUEST_CONTEXT.try_with(Clone::clone).ok()
    }

    /// `f` of the current request's context, without cloning it.
    pub fn with<R>(f: impl FnOnce(&Self) -> R) -> Option<R> {
        REQUEST_CONTEXT.try_with(f).ok()
    }
}

/// Filled in once the router has matched, so the outer middleware can label metrics and spans
/// with the route template (`/api/v1/users/{id}`) instead of the raw path.
#[derive(Clone, Default)]
struct RouteTag(Arc<OnceLock<(&'static str, MatchedPath)>>);

/// Marks every route of a context's router with the context's name. Call it on the context's
/// finished router; the outer stack (`with_platform_stack`) reads the tag.
pub fn tag_routes(router: Router, service: &'static str) -> Router {
    // A context without routes of some kind (identity consumes no events, so it has no
    // dead-letter routes) has nothing to tag, and axum refuses a route layer on no routes.
    if !router.has_routes() {
        return router;
    }
    // A plain request map, not a `from_fn` middleware: nothing to await, so no boxed future
    // and no `Next` per request.
    router.route_layer(tower::util::MapRequestLayer::new(move |req: Request| {
        tag_route(service, &req);
        req
    }))
}

fn tag_route(service: &'static str, req: &Request) {
    if let (Some(tag), Some(matched)) = (
        req.extensions().get::<RouteTag>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        // A clone of the matched path shares its text: no copy per request.
        let _ = tag.0.set((service, matched.clone()));
    }
}

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

/// What the process's wiring hands every request: the keys that verify tokens, the revoked
/// sessions, the proxies trusted for `X-Forwarded-For`. The platform stack adds it once per
/// request (as `Arc<Wiring>`); the extractors read it, or a value of the same type added as an
/// extension of its own (tests that build a router by hand). Added per route with
/// `Router::layer(Extension(..))`, each value cost every route a boxed layer per request.
#[derive(Clone, Default)]
pub struct Wiring {
    pub keys: Option<crate::auth::KeySet>,
    pub revocations: Option<crate::auth::Revocations>,
    pub trust_forwarded_for: Option<TrustForwardedFor>,
}

impl Wiring {
    /// The request's value of type `T`: an extension of that type if it has one (a router built
    /// by hand), else the field of its wiring that `pick` chooses.
    pub fn of<T: Clone + Send + Sync + 'static>(
        extensions: &axum::http::Extensions,
        pick: fn(&Wiring) -> Option<&T>,
    ) -> Option<T> {
        extensions
            .get::<T>()
            .or_else(|| extensions.get::<Arc<Wiring>>().and_then(|w| pick(w)))
            .cloned()
    }
}

/// Wraps a finished application router with the platform's cross-cutting behaviour. The order
/// matters: observation is outermost so that timeouts and panics are logged and counted too.
pub fn with_platform_stack(router: Router, limits: HttpLimits, wiring: Wiring) -> Router {
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    around_router(
        router,
        tower::ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                header::COOKIE,
            ]))
            .layer(Observe {
                limits,
                wiring: Arc::new(wiring),
                inner: (),
            })
            .layer(CatchPanicLayer::custom(panic_to_problem))
            .layer(DefaultBodyLimit::max(limits.max_body_bytes)),
    )
}

/// Puts `layer` once around the whole router (outermost first, as `tower::ServiceBuilder` lists
/// them). `Router::layer` wraps every route instead, and a request then clones and boxes each
/// layer of its route again: with a dozen layers that was a tenth of a cached read's cost.
pub fn around_router<L>(router: Router, layer: L) -> Router
where
    L: tower::Layer<Router>,
    L::Service:
        tower::Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<Request>>::Future: Send + 'static,
{
    Router::new().fallback_service(layer.layer(router))
}

async fn not_found() -> Problem {
    Problem::not_found("no resource at this path")
}

async fn method_not_allowed() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "", "Method not allowed")
        .with_detail("this resource does not support that method")
}

/// Whether `text` holds a control character other than tab and line breaks. PostgreSQL cannot
/// store U+0000 at all (a 500 where SQLite accepted it), and the others have no business in
/// names, reviews, reasons or filters.
pub fn has_control_characters(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

const CONTROL_MESSAGE: &str = "must not contain control characters (such as U+0000)";

/// Control characters can reach a handler only percent-encoded in the path or the query:
/// refused for every route (typed `Query`, raw queries and pages alike), naming the query
/// parameter. `observe` asks this before the router, rather than a layer of its own: each layer
/// costs a boxed future per request.
fn control_characters_refusal(uri: &Uri) -> Option<Problem> {
    if let Some(query) = uri.query().filter(|q| q.contains('%')) {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if has_control_characters(&key) || has_control_characters(&value) {
                let name = key.escape_debug().to_string();
                return Some(Problem::invalid_field(name, CONTROL_MESSAGE));
            }
        }
    }
    let path = uri.path();
    if path.contains('%') && has_control_characters(&percent_decode_lossy(path)) {
        return Some(Problem::invalid_field("path", CONTROL_MESSAGE));
    }
    None
}

fn percent_decode_lossy(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn panic_to_problem(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    Problem::internal(format!("handler panicked: {message}")).into_response()
}

/// A client-supplied request id is kept when it is short and printable; otherwise a new one is
/// made. Also the header value that echoes it: the request's own, when kept (a clone shares its
/// bytes, where building it again from the text would copy and check them).
fn request_id_from(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let kept = headers.get(&X_REQUEST_ID).and_then(|value| {
        value
            .to_str()
            .ok()
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(|id| (id.to_owned(), Some(value.clone())))
    });
    kept.unwrap_or_else(new_request_id)
}

/// A new request id (a UUID v7, so ids sort by time) and the header value that carries it.
/// Written straight into a buffer: `to_string` went through the formatting machinery.
pub fn new_request_id() -> (String, Option<HeaderValue>) {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buffer);
    (id.to_owned(), HeaderValue::from_str(id).ok())
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Counts a request as in flight until dropped, even when the client goes away mid-request.
struct InFlight(Option<&'static metrics::Gauge>);

impl InFlight {
    fn start() -> Self {
        let gauge = crate::metrics::requests_in_flight();
        if let Some(gauge) = gauge {
            gauge.increment(1.0);
        }
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(gauge) = self.0 {
            gauge.decrement(1.0);
        }
    }
}

/// Appends `bytes` as lower-case hex. Header values built on every request (trace ids, ETags)
/// use it instead of `format!`, whose machinery costs several times the encoding itself. The
/// digits go through a stack buffer: pushed one `char` at a time, each paid a UTF-8 encoding and
/// a capacity check (50 instructions a byte).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buffer = [0u8; 64];
    for chunk in bytes.chunks(buffer.len() / 2) {
        let hex = &mut buffer[..chunk.len() * 2];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        // Hex digits are ASCII, so this never falls back to the default.
        out.push_str(std::str::from_utf8(hex).unwrap_or_default());
    }
}

/// A span context as W3C Trace Context writes it in `traceparent` (and Level 2's `traceresponse`):
/// `00-<trace id>-<span id>-<flags>`, in lower-case hex, without `format!`'s machinery.
pub fn w3c_trace_header(context: &opentelemetry::trace::SpanContext) -> String {
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    push_hex(&mut out, &context.trace_id().to_bytes());
    out.push('-');
    push_hex(&mut out, &context.span_id().to_bytes());
    out.push('-');
    push_hex(&mut out, &[context.trace_flags().to_u8()]);
    out
}

/// Polls `future` inside `span`, as `Instrument` does, minus two trips through every tracing
/// layer that a request does not need: `Instrument` owns a clone of the span (cloned and dropped
/// once per request) and enters the span again to drop the future after it finished. A request
/// cancelled half-way therefore drops its future outside the span (its task-local context stays).
async fn polled_in<F: Future>(span: &tracing::Span, mut future: std::pin::Pin<&mut F>) -> F::Output {
    std::future::poll_fn(|cx| span.in_scope(|| future.as_mut().poll(cx))).await
}

/// The platform's observation of every request ([`observe`]), which also hands it the wiring, as
/// a layer. `axum::middleware::from_fn` would do the same job, but each request would also box the
/// inner service into a `Next` and take its parts apart and back through extractors; here a
/// request costs one boxed future.
#[derive(Clone)]
struct Observe<S = ()> {
    limits: HttpLimits,
    wiring: Arc<Wiring>,
    inner: S,
}

impl<S> tower::Layer<S> for Observe {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            limits: self.limits,
            wiring: self.wiring.clone(),
            inner,
        }
    }
}

impl<S> tower::Service<Request> for Observe<S>
where
    S: tower::Service<Request, Error = std::convert::Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The service made ready above answers this request; its clone waits for the next one.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        req.extensions_mut().insert(self.wiring.clone());
        let answer = observe(self.limits, req, ready);
        Box::pin(async move { Ok(answer.await) })
    }
}

/// `ready`'s answer to `req` (`ready` has been polled ready).
async fn answer<S>(mut ready: S, req: Request) -> Response
where
    S: tower::Service<Request, Error = std::convert::Infallible>,
    S::Response: IntoResponse,
{
    match ready.call(req).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

async fn observe<S>(limits: HttpLimits, mut req: Request, inner: S) -> Response
where
    S: tower::Service<Request, Error = std::convert::Infallible>,
    S::Response: IntoResponse,
{
    let _in_flight = InFlight::start();
    let started = Instant::now();
    let (request_id, request_id_header) = request_id_from(req.headers());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let tag = RouteTag::default();
    req.extensions_mut().insert(tag.clone());

    // A caller's trace to join, if it sent one. Without a `traceparent` there is nothing to
    // extract, and handing the span an empty parent still took the subscriber's lock (1.5% of a
    // cached read for the two).
    let parent = req
        .headers()
        .contains_key(TRACEPARENT)
        .then(|| opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(req.headers()))));
    let span = tracing::info_span!(
        "http.request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        // As text, not `%` (Display): layers copy text but run the formatter on a Display value.
        http.request.method = method.as_str(),
        url.path = path.as_str(),
        http.route = Empty,
        http.response.status_code = Empty,
        emporium.service = Empty,
        request_id = request_id.as_str(),
    );
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
    let span_context = span.context().span().span_context().clone();
    let trace_id = span_context.trace_id();
    let trace_headers = (trace_id != opentelemetry::trace::TraceId::INVALID).then(|| {
        // For the log lines logged inside the span, which format it only if there are any.
        crate::telemetry::attach_trace_id(&span, trace_id);
        // W3C `traceresponse`: version, trace id, span id, flags. `x-trace-id` is its trace id
        // part (`00-` then 32 hex digits), sharing the one buffer.
        let traceresponse = Bytes::from(w3c_trace_header(&span_context));
        (
            HeaderValue::from_maybe_shared(traceresponse.slice(3..35)),
            HeaderValue::from_maybe_shared(traceresponse),
        )
    });

    let ctx = RequestContext {
        request_id: request_id.clone(),
        path,
        trace: span_context.clone(),
    };
    let timeout = limits.request_timeout;
    let request = std::pin::pin!(REQUEST_CONTEXT.scope(ctx, async move {
        if let Some(problem) = control_characters_refusal(req.uri()) {
            return problem.into_response();
        }
        match tokio::time::timeout(timeout, answer(inner, req)).await {
            Ok(response) => response,
            Err(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "Request timed out")
                .with_detail(format!("the request took longer than {} ms", timeout.as_millis()))
                .with_cause("the handler was still running at EMPORIUM_REQUEST_TIMEOUT_MS and was cancelled")
                .into_response(),
        }
    }));
    let mut response = polled_in(&span, request).await;

    let status = response.status();
    let (service, route) = tag
        .0
        .get()
        .map(|(s, r)| (*s, r.as_str()))
        .unwrap_or(("none", "unmatched"));
    let elapsed = started.elapsed();
    // The outcome goes on the span only where someone reads it: a recorded trace, log lines that
    // show request spans' fields (RUST_LOG at INFO or more), or the ERROR line below. Unrecorded
    // and unlogged, each record was a trip through every layer for nothing (4% of a cached read).
    if span_context.is_sampled() || crate::telemetry::request_spans_logged() || status.is_server_error() {
        if span_context.is_sampled() {
            // The span's name in a trace: only a recorded trace has one to show.
            span.record("otel.name", format!("{method} {route}"));
        }
        span.record("http.route", route);
        if service != "none" {
            // Which part answered: in embedded mode one process serves them all, and the console
            // and the trace backend tell the contexts apart by this.
            span.record("emporium.service", service);
        }
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
    crate::metrics::record_http_request(service, method.as_str(), route, status, elapsed);
    if status.is_server_error() {
        // Every 5xx gets one ERROR line with its cause and request id, wherever it came from.
        let cause = response
            .extensions()
            .get::<crate::problem::ProblemCause>()
            .map_or("no cause recorded", |c| c.0.as_str());
        span.in_scope(|| {
            tracing::error!(
                status = status.as_u16(),
                request_id = %request_id,
                error = cause,
                "{method} {route} failed with {}",
                status.as_u16()
            )
        });
    }
    // The access line: stdout shows it at INFO, the console only for a recorded trace (see
    // `log_unless_recorded`). When neither would, the event is not sent at all: entering the
    // span and passing an event through every layer was 2-3% of a cached read.
    if span_context.is_sampled() || crate::telemetry::request_spans_logged() {
        crate::console::log_unless_recorded(span_context.is_sampled(), || {
            span.in_scope(|| {
                tracing::info!(
                    status = status.as_u16(),
                    latency_ms = elapsed.as_secs_f64() * 1000.0,
                    "{method} {route} -> {}",
                    status.as_u16()
                )
            })
        });
    }

    // Room, once, for the headers added from here outwards (these four, the edge's security and
    // rate-limit headers): a handler's map holds a few, and growing it twice on the way out
    // rehashed every entry each time (3% of a cached read).
    response.headers_mut().reserve(RESPONSE_HEADERS_ADDED);
    if let Some(value) = request_id_header {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    if let Some((Ok(trace_id), Ok(traceresponse))) = trace_headers {
        response.headers_mut().insert(X_TRACE_ID, trace_id);
        response.headers_mut().insert(TRACERESPONSE, traceresponse);
    }
    response
        .headers_mut()
        .insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// JSON body extractor and responder whose rejections are problem+json naming the bad field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            )
            .with_detail("send the body as JSON with `Content-Type: application/json`"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_rejection(rejection: BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large")
            .with_detail("the request body exceeds the configured limit (EMPORIUM_MAX_BODY_BYTES)")
    } else {
        Problem::bad_request(format!("could not read the request body: {}", rejection.body_text()))
    }
}

/// Parses JSON, telling malformed documents (400) from well-formed ones with wrong content (422),
/// and refusing control characters in any string (422 naming the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if might_hold_control_characters(bytes)
        && let Ok(document) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(field) = control_character_field(&document, "")
    {
        return Err(Problem::invalid_field(field, CONTROL_MESSAGE));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => data_problem(&path, &inner.to_string()),
            _ => Problem::bad_request(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Control characters reach a JSON string only as escapes (`\u0000`, `\b`, `\f`; raw ones make
/// the document malformed), except DEL and the C1 range, which may be sent raw. Cheap test
/// first, so ordinary bodies are parsed once.
fn might_hold_control_characters(bytes: &[u8]) -> bool {
    bytes.contains(&0x7f)
        || bytes
            .windows(2)
            .any(|w| matches!(w, [b'\\', b'u' | b'b' | b'f']) || (w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1])))
}

/// The path (`title`, `items[2].name`) of the first string or key holding a control character.
fn control_character_field(value: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if has_control_characters(s) => Some(if at.is_empty() {
            "body".to_owned()
        } else {
            at.to_owned()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| control_character_field(item, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let path = if at.is_empty() {
                key.escape_debug().to_string()
            } else {
                format!("{at}.{}", key.escape_debug())
            };
            if has_control_characters(key) {
                Some(path)
            } else {
                control_character_field(item, &path)
            }
        }),
        _ => None,
    }
}

/// Serde reports a missing or unknown field against its parent; name the field itself.
fn data_problem(path: &str, message: &str) -> Problem {
    let message = message.split(" at line ").next().unwrap_or(message);
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let unknown = message.starts_with("unknown field");
    let field = match (named, path) {
        (Some(name), "." | "") => name.to_owned(),
        // For unknown fields the path already ends with the offending key.
        (Some(_), known) if unknown => known.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "." | "") => "body".to_owned(),
        (None, p) => p.to_owned(),
    };
    let message = if unknown {
        "is not a known field".to_owned()
    } else if message.starts_with("missing field") {
        "is required".to_owned()
    } else {
        message.to_owned()
    };
    Problem::validation(vec![FieldError::new(field, message)])
}

/// Query-string extractor whose rejections name the offending parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|err| {
            let path = err.path().to_string();
            data_problem(&path, &err.into_inner().to_string())
        })
    }
}

/// Path-parameter extractor whose rejections are problem+json naming the parameter (axum's own
/// answer is `text/plain`, e.g. for `/orders/%FF%FE`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(path_problem)
    }
}

fn path_problem(rejection: axum::extract::rejection::PathRejection) -> Problem {
    use axum::extract::path::ErrorKind;
    use axum::extract::rejection::PathRejection;
    let PathRejection::FailedToDeserializePathParams(failed) = rejection else {
        return Problem::internal(format!("path parameters unavailable: {}", rejection.body_text()));
    };
    let problem = |key: &str, message: &str| {
        Problem::new(StatusCode::BAD_REQUEST, "malformed-request", "Malformed request")
            .with_detail(format!("path parameter `{key}` {message}"))
            .with_errors(vec![FieldError::new(key, message)])
    };
    match failed.into_kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => problem(&key, "is not valid UTF-8"),
        ErrorKind::ParseErrorAtKey { key, expected_type, .. } => {
            problem(&key, &format!("cannot be read as {expected_type}"))
        }
        ErrorKind::ParseError { expected_type, .. } => problem("path", &format!("cannot be read as {expected_type}")),
        ErrorKind::ParseErrorAtIndex {
            index, expected_type, ..
        } => problem(&format!("#{index}"), &format!("cannot be read as {expected_type}")),
        other => Problem::bad_request(format!("the path parameters cannot be read: {other}")),
    }
}

/// The address of the client: the peer address, or, when the process is told
/// (`TrustForwardedFor`) that it sits behind trusted proxies, the address they recorded in
/// `X-Forwarded-For` (see [`forwarded_client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Insert as a request extension to honour `X-Forwarded-For`: `hops` is the number of proxies
/// in front of this process that append to it (`EMPORIUM_TRUSTED_PROXY_HOPS`).
#[derive(Debug, Clone, Copy)]
pub struct TrustForwardedFor {
    pub hops: usize,
}

/// The client address `X-Forwarded-For` names behind `hops` trusted proxies that each append
/// the address they saw: the `hops`-th entry from the right. Entries further left were written
/// by the client (or by proxies we do not know) and prove nothing, so they are never taken
/// unless the chain is shorter than the proxies configured. `None` without a usable entry.
pub fn forwarded_client(headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    if hops == 0 {
        return None;
    }
    // Several header lines form one list, in order (RFC 9110 §5.3).
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let entry = entries.get(entries.len().checked_sub(1)?.saturating_sub(hops - 1))?;
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(trust) = Wiring::of(&parts.extensions, |w| w.trust_forwarded_for.as_ref())
            && let Some(ip) = forwarded_client(&parts.headers, trust.hops)
        {
            return Ok(ClientIp(ip));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(peer))
    }
}

/// The `User-Agent`, trimmed to a length worth storing.
#[derive(Debug, Clone, Default)]
pub struct UserAgent(pub String);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ua = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        Ok(UserAgent(ua.chars().take(256).collect()))
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: no new connections; finishing in-flight requests");
}

/// Serves `app` until `shutdown` resolves, then lets in-flight requests finish for at most `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let stopping = Arc::new(tokio::sync::Notify::new());
    let notify = stopping.clone();
    let signal = async move {
        shutdown.await;
        notify.notify_one();
    };
    let server =
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(signal);
    let deadline = async move {
        stopping.notified().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server.into_future() => result,
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over: dropping requests still running");
            Ok(())
        }
    }
}

/// The version an `If-Match` header expects: `Ok(None)` when it is absent or `*` ("whatever is
/// current"); otherwise `version_of` reads the unquoted tag, and a tag it cannot read is a 412.
/// Each context keeps its own ETag format; this is the header handling they share.
pub fn if_match_version(
    headers: &HeaderMap,
    version_of: impl FnOnce(&str) -> Option<i64>,
) -> Result<Option<i64>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    version_of(text.trim_start_matches("W/").trim_matches('"'))
        .map(Some)
        .ok_or_else(|| Problem::precondition_failed("If-Match must be an ETag returned by this API, like \"v3\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        let mut out = String::from("x");
        push_hex(&mut out, &[0x00, 0x0f, 0xa5, 0xff]);
        assert_eq!(out, "x000fa5ff");
        let trace = opentelemetry::trace::TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex");
        let mut hex = String::new();
        push_hex(&mut hex, &trace.to_bytes());
        assert_eq!(hex, trace.to_string());
    }

    #[test]
    fn trace_headers_are_written_as_w3c_trace_context_spells_them() {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex");
        let span = SpanId::from_hex("00f067aa0ba902b7").expect("hex");
        for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
            let context = SpanContext::new(trace, span, flags, true, TraceState::default());
            let header = w3c_trace_header(&context);
            assert_eq!(header, format!("00-{trace}-{span}-{:02x}", flags.to_u8()));
            assert_eq!(header.len(), 55);
        }
        assert!(
            w3c_trace_header(&SpanContext::new(
                trace,
                span,
                TraceFlags::SAMPLED,
                true,
                TraceState::default()
            ))
            .ends_with("-01")
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        age: u8,
    }

    #[test]
    fn malformed_json_is_400() {
        let p = parse_json::<Body>(b"{\"email\": ").expect_err("malformed");
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let p = parse_json::<Body>(br#"{"email":"a@b.c","age":"x"}"#).expect_err("bad type");
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(p.errors[0].field, "age");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let p = parse_json::<Body>(br#"{"age":3}"#).expect_err("missing");
        assert_eq!(p.errors[0].field, "email");
        assert_eq!(p.errors[0].message, "is required");
        let p = parse_json::<Body>(br#"{"email":"a","age":3,"admin":true}"#).expect_err("unknown");
        assert_eq!(p.errors[0].field, "admin");
    }

    #[test]
    fn trailing_garbage_is_malformed() {
        let p = parse_json::<Body>(br#"{"email":"a","age":3} x"#).expect_err("trailing");
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn control_characters_in_json_strings_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Review {
            title: String,
            tags: Vec<String>,
        }
        let p = parse_json::<Review>(br#"{"title":"a\u0000b","tags":[]}"#).expect_err("NUL");
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(p.errors[0].field, "title");
        let p = parse_json::<Review>(br#"{"title":"ok","tags":["x","\u001b[31m"]}"#).expect_err("ESC");
        assert_eq!(p.errors[0].field, "tags[1]");
        let p = parse_json::<serde_json::Value>("{\"a\":{\"b\":\"x\u{7f}\"}}".as_bytes()).expect_err("raw DEL");
        assert_eq!(p.errors[0].field, "a.b");
        // Line breaks and tabs are text; escaped letters and a literal backslash-u are fine.
        let ok = parse_json::<Review>(br#"{"title":"line\nbreak\ttab \u00e9 \\u0000","tags":[]}"#).expect("ok");
        assert_eq!(ok.title, "line\nbreak\ttab \u{e9} \\u0000");
    }

    #[test]
    fn percent_decoding_finds_encoded_control_characters() {
        assert!(has_control_characters(&percent_decode_lossy("/api/v1/x/a%00b")));
        assert!(has_control_characters(&percent_decode_lossy("/p/%C2%85")));
        assert!(!has_control_characters(&percent_decode_lossy("/p/caf%C3%A9%2")));
        assert!(
            !has_control_characters(&percent_decode_lossy("/p/%0A")),
            "a line feed is text"
        );
    }

    #[tokio::test]
    async fn bad_path_parameters_are_problems_naming_the_parameter() {
        use tower::ServiceExt;
        let app = Router::new()
            .route(
                "/t/{id}",
                axum::routing::get(|Path(id): Path<String>| async move { id }),
            )
            .route(
                "/n/{n}",
                axum::routing::get(|Path(n): Path<u32>| async move { n.to_string() }),
            );
        let call = |uri: &'static str| {
            let app = app.clone();
            async move {
                let r = app
                    .oneshot(Request::get(uri).body(axum::body::Body::empty()).expect("request"))
                    .await
                    .expect("response");
                let status = r.status();
                let ct = r.headers().get(header::CONTENT_TYPE).cloned();
                let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.expect("body");
                (status, ct, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let (status, ct, body) = call("/t/%FF%FE").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(ct.expect("content type"), crate::problem::PROBLEM_CONTENT_TYPE);
        assert!(body.contains(r#""field":"id""#), "{body}");
        let (status, ct, _) = call("/n/x").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(ct.expect("content type"), crate::problem::PROBLEM_CONTENT_TYPE);
        assert_eq!(call("/t/caf%C3%A9").await.2, "café");
    }

    #[test]
    fn tagging_a_router_without_routes_is_a_no_op() {
        let router = tag_routes(Router::new(), "identity");
        assert!(!router.has_routes());
    }

    #[test]
    fn forwarded_for_trusts_only_the_configured_hops_from_the_right() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.0.2"),
        );
        assert_eq!(forwarded_client(&h, 0), None, "no trusted proxy: the header is ignored");
        // One appending proxy: the entry it wrote, whatever the client put in front.
        assert_eq!(forwarded_client(&h, 1), Some(IpAddr::from([10, 0, 0, 2])));
        assert_eq!(forwarded_client(&h, 2), Some(IpAddr::from([203, 0, 113, 9])));
        assert_eq!(forwarded_client(&h, 3), Some(IpAddr::from([6, 6, 6, 6])));
        // A chain shorter than the proxies configured: the oldest entry a proxy wrote.
        assert_eq!(forwarded_client(&h, 9), Some(IpAddr::from([6, 6, 6, 6])));
        // Header lines join into one list; ports and brackets are understood.
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("[2001:db8::1]:4711"));
        assert_eq!(forwarded_client(&h, 1), Some("2001:db8::1".parse().expect("ip")));
        assert_eq!(forwarded_client(&h, 2), Some(IpAddr::from([1, 1, 1, 1])));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1, garbage"));
        assert_eq!(
            forwarded_client(&h, 1),
            None,
            "an unreadable trusted entry falls back to the peer"
        );
        assert_eq!(forwarded_client(&HeaderMap::new(), 1), None);
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        let (id, echo) = request_id_from(&h);
        assert_eq!(id, "abc-123");
        assert_eq!(echo, Some(HeaderValue::from_static("abc-123")));
        h.insert(X_REQUEST_ID, HeaderValue::from_static("has space"));
        let (id, echo) = request_id_from(&h);
        assert_ne!(id, "has space");
        assert_eq!(uuid::Uuid::parse_str(&id).map(|u| u.get_version_num()), Ok(7), "{id}");
        assert_eq!(echo.as_ref().and_then(|v| v.to_str().ok()), Some(id.as_str()));
    }

    #[test]
    fn hex_is_written_in_chunks_of_any_length() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = String::from("x");
        push_hex(&mut out, &bytes);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(out, format!("x{expected}"));
        let mut empty = String::new();
        push_hex(&mut empty, &[]);
        assert_eq!(empty, "");
    }
}
