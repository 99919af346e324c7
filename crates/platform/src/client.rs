//! Calls from one context to another's HTTP API.
//!
//! A caller names the context it wants ([`Peers::client`]) and gets a [`ServiceClient`]. In
//! production that is HTTP to `EMPORIUM_<CONTEXT>_URL`; inside one process the request can go
//! straight into the process's own router: the same handlers, validation, auth and idempotency
//! run, only the socket is skipped. Callers see the same status codes and JSON either way, which
//! is why one test suite covers both modes (ADR 0006).
//!
//! Callers hold a context's published API (`contracts::api`) rather than a client, so when the
//! callee runs in the same process and offers its API ([`Peers::offer`]), the call is a plain
//! method call on the callee's service with the same validation, access rules and idempotency,
//! and no serialising at all ([`Peers::direct`], [`call_direct`]; ADR 0013).
//!
//! `as_service()` authenticates as the calling context with a short-lived token (role
//! `service`) that identity issues for the shared `EMPORIUM_SERVICE_SECRET`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use contracts::api::identity::{ServiceTokenRequest, ServiceTokenResponse};
use contracts::api::{ClientError, FieldError};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tower::ServiceExt;

/// Replies larger than this are refused (no context sends pages this big).
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub use contracts::api::identity::SERVICE_TOKEN_PATH;

/// Why a call produced no reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("{0} is unreachable")]
    Unreachable(String),
    #[error("the call timed out")]
    Timeout,
    #[error("unexpected reply: {0}")]
    BadReply(String),
    #[error("no service credentials: {0}")]
    NoCredentials(String),
}

impl CallError {
    /// The published form of this failure for a call to `peer`: no answer at all.
    pub fn for_peer(self, peer: &'static str) -> ClientError {
        ClientError::Unreachable {
            peer,
            detail: self.to_string(),
        }
    }
}

/// A direct call to `target`'s published API inside this process (see [`Peers::direct`]): the
/// same budget and `service_client_duration_seconds` series as a call over HTTP (outcome `ok`
/// instead of a status on success), and a span naming the operation, so a trace still shows
/// which context waited on which.
pub async fn call_direct<T>(
    target: &'static str,
    operation: &'static str,
    budget: Duration,
    call: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    use tracing::Instrument as _;
    let started = Instant::now();
    let span = tracing::info_span!(
        "context.call",
        otel.name = %format_args!("{target}.{operation}"),
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        peer.service = target,
    );
    let result = tokio::time::timeout(budget, call).instrument(span.clone()).await;
    let (outcome, result) = match result {
        Ok(Ok(answer)) => ("ok".to_owned(), Ok(answer)),
        Ok(Err(error)) => (
            error.status().map_or_else(|| "error".to_owned(), |s| s.to_string()),
            Err(error),
        ),
        Err(_) => ("timeout".to_owned(), Err(CallError::Timeout.for_peer(target))),
    };
    if matches!(&result, Err(e) if e.is_retryable()) {
        span.record("otel.status_code", "ERROR");
    }
    metrics::histogram!("service_client_duration_seconds", "target" => target, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    result
}

/// The budget of a call when the caller sets none (5 s).
pub const DEFAULT_BUDGET: Duration = DEFAULT_TIMEOUT;

/// The process's own router, known only once every context is built; set by the app wiring.
#[derive(Clone, Default)]
pub struct LocalRouter(Arc<OnceLock<Router>>);

impl LocalRouter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Completes the wiring. Later calls are ignored (the first router stays).
    pub fn set(&self, router: Router) {
        let _ = self.0.set(router);
    }

    fn get(&self) -> Option<Router> {
        self.0.get().cloned()
    }
}

#[derive(Clone)]
enum Transport {
    Local(LocalRouter),
    Remote { http: reqwest::Client, base: Arc<str> },
}

/// How to reach every other context, and the credentials to call them as a service.
#[derive(Clone)]
pub struct Peers {
    inner: Arc<PeersInner>,
}

struct PeersInner {
    local: LocalRouter,
    in_process: BTreeSet<String>,
    remote: BTreeMap<String, String>,
    http: reqwest::Client,
    secret: Option<String>,
    tokens: Mutex<BTreeMap<&'static str, CachedToken>>,
    /// The published APIs the contexts of this process offer for direct calls.
    direct: std::sync::RwLock<Vec<DirectApi>>,
    /// Off: calls go through this process's router even to a context offering a direct API.
    direct_calls: std::sync::atomic::AtomicBool,
}

/// One context's published API for direct calls: a [`DirectOffer`] of its `dyn …Api`, type-erased.
struct DirectApi {
    target: &'static str,
    offer: Box<dyn std::any::Any + Send + Sync>,
}

/// Builds a context's API (`T`, its `dyn …Api` trait) for a calling context: the caller is the
/// principal of the direct calls, as its service token would be over HTTP.
pub type DirectOffer<T> = Arc<dyn Fn(&'static str) -> Arc<T> + Send + Sync>;

#[derive(Clone)]
struct CachedToken {
    token: String,
    refresh_after: Instant,
}

impl Peers {
    /// `in_process`: contexts this process runs (reached through `local`); `remote`: base URLs of
    /// the others by context name; `secret`: the shared service secret, if any.
    pub fn new(
        local: LocalRouter,
        in_process: impl IntoIterator<Item = String>,
        remote: BTreeMap<String, String>,
        secret: Option<String>,
    ) -> Self {
        static DESCRIBED: std::sync::Once = std::sync::Once::new();
        DESCRIBED.call_once(|| {
            metrics::describe_histogram!(
                "service_client_duration_seconds",
                metrics::Unit::Seconds,
                "Calls to other contexts by target context and outcome (HTTP status, `ok` for a direct call in this process, timeout, error)."
            );
        });
        Self {
            inner: Arc::new(PeersInner {
                local,
                in_process: in_process.into_iter().collect(),
                remote,
                http: reqwest::Client::builder()
                    .pool_idle_timeout(Duration::from_secs(60))
                    .build()
                    .unwrap_or_default(),
                secret,
                tokens: Mutex::new(BTreeMap::new()),
                direct: std::sync::RwLock::new(Vec::new()),
                direct_calls: std::sync::atomic::AtomicBool::new(true),
            }),
        }
    }

    /// No peers at all (tests of a context on its own).
    pub fn none() -> Self {
        Self::new(LocalRouter::new(), Vec::new(), BTreeMap::new(), None)
    }

    /// Whether a context offering its API for direct calls ([`Peers::offer`]) is called directly
    /// (`true`, the default) or through this process's router like any HTTP caller
    /// (`EMPORIUM_PEER_CALLS=http`: the router's middleware on every call, e.g. to compare).
    pub fn set_direct_calls(&self, on: bool) {
        self.inner.direct_calls.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Offers `target`'s published API (`T` is its `dyn …Api` trait) to the other contexts of
    /// this process, so their calls skip HTTP, JSON and the token exchange (ADR 0013). `api`
    /// builds it for one calling context.
    pub fn offer<T: ?Sized + Send + Sync + 'static>(
        &self,
        target: &'static str,
        api: impl Fn(&'static str) -> Arc<T> + Send + Sync + 'static,
    ) {
        let offer: DirectOffer<T> = Arc::new(api);
        let mut direct = crate::sync::write(&self.inner.direct);
        direct.retain(|d| !(d.target == target && d.offer.is::<DirectOffer<T>>()));
        direct.push(DirectApi {
            target,
            offer: Box::new(offer),
        });
    }

    /// `target`'s published API for `caller` as a direct call, when `target` runs in this
    /// process, offered one and direct calls are on; `None` means: call it over HTTP
    /// ([`Peers::client`]).
    pub fn direct<T: ?Sized + Send + Sync + 'static>(&self, caller: &'static str, target: &str) -> Option<Arc<T>> {
        // Where an HTTP call would go decides: a configured URL wins over this process.
        let runs_here = matches!(self.transport(target), Some(Transport::Local(_)));
        if !runs_here || !self.inner.direct_calls.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let offer = {
            let direct = crate::sync::read(&self.inner.direct);
            direct
                .iter()
                .filter(|d| d.target == target)
                .find_map(|d| d.offer.downcast_ref::<DirectOffer<T>>().cloned())?
        };
        Some(offer(caller))
    }

    /// A client for `target`'s API on behalf of the `caller` context. Fails when `target` neither
    /// runs in this process nor has a URL configured, naming the variable to set.
    pub fn client(&self, caller: &'static str, target: &'static str) -> anyhow::Result<ServiceClient> {
        let transport = self.transport(target).ok_or_else(|| {
            crate::config::ConfigError::new(
                format!("EMPORIUM_{}_URL", target.to_ascii_uppercase()),
                format!("is required: {caller} calls {target}, which does not run in this process"),
            )
        })?;
        Ok(ServiceClient {
            caller,
            target,
            transport,
            peers: self.clone(),
        })
    }

    fn transport(&self, target: &str) -> Option<Transport> {
        if let Some(base) = self.inner.remote.get(target) {
            return Some(Transport::Remote {
                http: self.inner.http.clone(),
                base: base.trim_end_matches('/').into(),
            });
        }
        self.inner
            .in_process
            .contains(target)
            .then(|| Transport::Local(self.inner.local.clone()))
    }

    /// A valid service token for `caller`, fetched from identity and cached until shortly before
    /// it expires.
    async fn service_token(&self, caller: &'static str) -> Result<String, CallError> {
        let mut tokens = self.inner.tokens.lock().await;
        if let Some(cached) = tokens.get(caller)
            && Instant::now() < cached.refresh_after
        {
            return Ok(cached.token.clone());
        }
        let secret = self
            .inner
            .secret
            .clone()
            .ok_or_else(|| CallError::NoCredentials("EMPORIUM_SERVICE_SECRET is not set".into()))?;
        let identity = self
            .transport("identity")
            .ok_or_else(|| CallError::NoCredentials("EMPORIUM_IDENTITY_URL is not set".into()))?;
        let body = ServiceTokenRequest {
            client_id: caller.to_owned(),
            client_secret: secret,
        };
        let call = Call::new(identity, Method::POST, SERVICE_TOKEN_PATH, caller, self.clone()).json(&body);
        let reply = tokio::time::timeout(DEFAULT_TIMEOUT, call.dispatch())
            .await
            .map_err(|_| CallError::Timeout)??;
        if !reply.status.is_success() {
            return Err(CallError::NoCredentials(format!(
                "identity refused a service token ({}): {}",
                reply.status,
                reply.problem_detail()
            )));
        }
        let issued: ServiceTokenResponse = reply.json()?;
        // Renew at two thirds of the lifetime, so a token is never used in its last minutes.
        let refresh_after = Instant::now() + Duration::from_secs(issued.expires_in * 2 / 3);
        tokens.insert(
            caller,
            CachedToken {
                token: issued.access_token.clone(),
                refresh_after,
            },
        );
        Ok(issued.access_token)
    }
}

/// Calls one other context.
#[derive(Clone)]
pub struct ServiceClient {
    caller: &'static str,
    /// The context called: the metrics label (a fixed set, unlike paths with ids and queries).
    target: &'static str,
    transport: Transport,
    peers: Peers,
}

impl ServiceClient {
    pub fn get(&self, path: &str) -> Call {
        self.call(Method::GET, path)
    }
    pub fn post(&self, path: &str) -> Call {
        self.call(Method::POST, path)
    }
    pub fn put(&self, path: &str) -> Call {
        self.call(Method::PUT, path)
    }
    pub fn patch(&self, path: &str) -> Call {
        self.call(Method::PATCH, path)
    }
    pub fn delete(&self, path: &str) -> Call {
        self.call(Method::DELETE, path)
    }

    /// A call with any method; `path` includes the query string.
    pub fn call(&self, method: Method, path: &str) -> Call {
        let mut call = Call::new(self.transport.clone(), method, path, self.caller, self.peers.clone());
        call.target = self.target;
        call
    }
}

enum Credentials {
    None,
    Bearer(String),
    Service,
}

/// One request being built; [`Call::send`] runs it.
/// Request extension set on calls dispatched in-process (never on a request from a socket).
#[derive(Debug, Clone, Copy)]
pub struct InProcessCall;

pub struct Call {
    transport: Transport,
    method: Method,
    path: String,
    caller: &'static str,
    target: &'static str,
    peers: Peers,
    credentials: Credentials,
    headers: HeaderMap,
    body: Option<Result<Vec<u8>, String>>,
    timeout: Duration,
    on_behalf_of: Option<std::net::IpAddr>,
}

impl Call {
    fn new(transport: Transport, method: Method, path: &str, caller: &'static str, peers: Peers) -> Self {
        Self {
            transport,
            method,
            path: path.to_owned(),
            caller,
            target: "other",
            peers,
            credentials: Credentials::None,
            headers: HeaderMap::new(),
            body: None,
            timeout: DEFAULT_TIMEOUT,
            on_behalf_of: None,
        }
    }

    /// Forwards an end user's access token.
    pub fn bearer(mut self, token: &str) -> Self {
        self.credentials = Credentials::Bearer(token.to_owned());
        self
    }

    /// Authenticates as the calling context (role `service`).
    pub fn as_service(mut self) -> Self {
        self.credentials = Credentials::Service;
        self
    }

    /// The end user's address, for per-client limits and audit records downstream (the web pages
    /// call the API for a browser). In-process it is the connection's peer address; over HTTP it
    /// is sent as `X-Forwarded-For`, which the peer honours only when told to trust its proxy.
    pub fn on_behalf_of(mut self, ip: std::net::IpAddr) -> Self {
        self.on_behalf_of = Some(ip);
        if let Ok(value) = HeaderValue::try_from(ip.to_string()) {
            self.headers.insert("x-forwarded-for", value);
        }
        self
    }

    pub fn idempotency_key(self, key: &str) -> Self {
        self.header("idempotency-key", key)
    }

    /// Adds a header; an invalid name or value is dropped (callers pass literals and ids).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            self.headers.insert(name, value);
        }
        self
    }

    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.body = Some(serde_json::to_vec(body).map_err(|e| e.to_string()));
        self
    }

    /// The whole call's budget (default 5 s), including obtaining a service token.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub async fn send(self) -> Result<Reply, CallError> {
        use tracing::Instrument as _;
        let budget = self.timeout;
        // Never the path: it carries ids and query strings, one series per value a client sends.
        let target = self.target;
        let started = Instant::now();
        // The client side of the call: its `traceparent` goes out (see `dispatch`), so the
        // callee's server span is this span's child, as OpenTelemetry expects of RPCs.
        let span = tracing::info_span!(
            "http.client",
            otel.name = %format_args!("{} {target}", self.method),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            peer.service = target,
            http.response.status_code = tracing::field::Empty,
        );
        let result = match tokio::time::timeout(budget, self.run()).instrument(span.clone()).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout),
        };
        match &result {
            Ok(reply) => {
                span.record("http.response.status_code", reply.status.as_u16());
                if reply.status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                }
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        let outcome = match &result {
            Ok(reply) => reply.status.as_str().to_owned(),
            Err(CallError::Timeout) => "timeout".into(),
            Err(_) => "error".into(),
        };
        metrics::histogram!("service_client_duration_seconds", "target" => target, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Sends the call and reads the answer as the callee publishes it: a success reply's body as
    /// `T`, an error reply as [`ClientError::Status`] with its problem.
    pub async fn fetch<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        let peer = self.target;
        let reply = self.send().await.map_err(|e| e.for_peer(peer))?;
        reply.decode(peer)
    }

    /// Sends the call; a success reply as it is, an error reply as [`ClientError::Status`].
    pub async fn succeed(self) -> Result<Reply, ClientError> {
        let peer = self.target;
        let reply = self.send().await.map_err(|e| e.for_peer(peer))?;
        if reply.is_success() {
            Ok(reply)
        } else {
            Err(reply.error(peer))
        }
    }

    async fn run(mut self) -> Result<Reply, CallError> {
        match std::mem::replace(&mut self.credentials, Credentials::None) {
            Credentials::None => {}
            Credentials::Bearer(token) => self.set_bearer(&token),
            Credentials::Service => {
                let token = Box::pin(self.peers.service_token(self.caller)).await?;
                self.set_bearer(&token);
            }
        }
        self.dispatch().await
    }

    /// Sends the request as built (credentials already set).
    async fn dispatch(mut self) -> Result<Reply, CallError> {
        if let Some(traceparent) = crate::events::current_traceparent()
            && let Ok(value) = HeaderValue::try_from(traceparent)
        {
            self.headers.insert("traceparent", value);
        }
        let body = match self.body.take() {
            None => None,
            Some(Ok(bytes)) => {
                self.headers
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Some(bytes)
            }
            Some(Err(e)) => return Err(CallError::BadReply(format!("cannot encode the request: {e}"))),
        };
        match self.transport.clone() {
            Transport::Local(local) => self.run_local(local, body).await,
            Transport::Remote { http, base } => self.run_remote(http, &base, body).await,
        }
    }

    fn set_bearer(&mut self, token: &str) {
        if let Ok(value) = HeaderValue::try_from(format!("Bearer {token}")) {
            self.headers.insert(header::AUTHORIZATION, value);
        }
    }

    async fn run_local(self, local: LocalRouter, body: Option<Vec<u8>>) -> Result<Reply, CallError> {
        let router = local
            .get()
            .ok_or_else(|| CallError::Unreachable(format!("{} (the app is still starting)", self.path)))?;
        let length = body.as_ref().map(Vec::len);
        let mut request = Request::builder()
            .method(self.method)
            .uri(&self.path)
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .map_err(|e| CallError::BadReply(format!("invalid request: {e}")))?;
        *request.headers_mut() = self.headers;
        // As a client on the wire would: a router that forwards the call (the gateway's proxy)
        // tells from the length whether a DELETE carries a body, and dropped it without.
        if let Some(length) = length {
            request
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        // What the handlers would see from the connection (loopback, unless calling for a client).
        let peer = self.on_behalf_of.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        request.extensions_mut().insert(ConnectInfo(SocketAddr::new(peer, 0)));
        // Marks the call as coming from inside this process, so no client address's budget pays
        // for it (e.g. identity's service-token endpoint).
        request.extensions_mut().insert(InProcessCall);
        let response = router
            .oneshot(request)
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| CallError::BadReply(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    async fn run_remote(self, http: reqwest::Client, base: &str, body: Option<Vec<u8>>) -> Result<Reply, CallError> {
        let url = format!("{base}{}", self.path);
        let mut request = http.request(self.method, &url).headers(self.headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                CallError::Timeout
            } else {
                CallError::Unreachable(format!("{base}: {e}"))
            }
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        if response.content_length().is_some_and(|n| n as usize > MAX_REPLY_BYTES) {
            return Err(CallError::BadReply(format!("{url}: reply too large")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| CallError::Unreachable(format!("{base}: {e}")))?;
        Ok(Reply { status, headers, body })
    }
}

/// What another context answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(|e| CallError::BadReply(format!("{} body: {e}", self.status)))
    }

    /// A success reply's body as `T`; an error reply as [`ClientError::Status`], a body that is
    /// not a `T` as [`ClientError::Malformed`].
    pub fn decode<T: DeserializeOwned>(&self, peer: &'static str) -> Result<T, ClientError> {
        if !self.is_success() {
            return Err(self.error(peer));
        }
        self.json().map_err(|e| ClientError::Malformed {
            peer,
            status: self.status.as_u16(),
            detail: e.to_string(),
        })
    }

    /// This reply as an error from `peer`: its status, its problem's detail and field errors.
    pub fn error(&self, peer: &'static str) -> ClientError {
        ClientError::Status {
            peer,
            status: self.status.as_u16(),
            detail: self.problem_detail(),
            errors: self.field_errors(),
        }
    }

    /// The `errors[]` of an error reply's problem (entries without a `field` are skipped).
    pub fn field_errors(&self) -> Vec<FieldError> {
        self.problem()
            .and_then(|p| match p.get("errors") {
                Some(serde_json::Value::Array(errors)) => Some(errors.clone()),
                _ => None,
            })
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| serde_json::from_value(e).ok())
            .collect()
    }

    /// The problem+json body of an error reply.
    pub fn problem(&self) -> Option<serde_json::Value> {
        if self.status.is_success() {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    /// The problem's `detail` (or `title`), for logs and messages.
    pub fn problem_detail(&self) -> String {
        self.problem()
            .and_then(|p| {
                p.get("detail")
                    .or_else(|| p.get("title"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| self.status.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    fn peers_with(router: Router) -> Peers {
        let local = LocalRouter::new();
        local.set(router);
        Peers::new(local, ["catalog".to_owned()], BTreeMap::new(), None)
    }

    #[tokio::test]
    async fn local_calls_reach_the_router_with_headers_and_body() {
        let router = Router::new().route(
            "/api/v1/catalog/echo",
            get(|headers: HeaderMap| async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                (StatusCode::ACCEPTED, axum::Json(serde_json::json!({"key": key})))
            }),
        );
        let client = peers_with(router).client("ordering", "catalog").expect("client");
        let reply = client
            .get("/api/v1/catalog/echo?x=1")
            .idempotency_key("k-1")
            .send()
            .await
            .expect("reply");
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert_eq!(reply.json::<serde_json::Value>().expect("json")["key"], "k-1");
    }

    /// A router that forwards calls (the gateway's proxy in the multi-process topology) decides
    /// from the length whether a DELETE has a body: local calls state it as a wire client does.
    #[tokio::test]
    async fn local_calls_with_a_body_state_its_length() {
        let router = Router::new().route(
            "/api/v1/catalog/echo",
            axum::routing::delete(|headers: HeaderMap| async move {
                headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned()
            }),
        );
        let client = peers_with(router).client("web", "catalog").expect("client");
        let reply = client
            .call(Method::DELETE, "/api/v1/catalog/echo")
            .json(&serde_json::json!({"password": "pw"}))
            .send()
            .await
            .expect("reply");
        assert_eq!(&reply.body[..], b"17");
    }

    #[tokio::test]
    async fn unknown_peer_names_the_variable_and_missing_secret_is_reported() {
        let peers = peers_with(Router::new());
        let err = peers.client("ordering", "payments").err().expect("not configured");
        assert!(err.to_string().contains("EMPORIUM_PAYMENTS_URL"), "{err}");
        let client = peers.client("ordering", "catalog").expect("client");
        let err = client.get("/x").as_service().send().await.expect_err("no secret");
        assert!(matches!(err, CallError::NoCredentials(_)), "{err}");
    }

    #[tokio::test]
    async fn the_target_label_is_the_context_never_the_path() {
        let handle = crate::metrics::install();
        let router = Router::new().route("/api/v1/catalog", get(|| async { "ok" }));
        let client = peers_with(router).client("ordering", "catalog").expect("client");
        for i in 0..20 {
            client
                .get(&format!("/api/v1/catalog?sku=QSKU{i}"))
                .send()
                .await
                .expect("reply");
        }
        let text = handle.render();
        assert!(!text.contains("QSKU"), "query strings must not become labels");
        assert!(
            text.lines()
                .any(|l| l.starts_with("service_client_duration_seconds") && l.contains(r#"target="catalog""#)),
            "{text}"
        );
    }

    #[tokio::test]
    async fn slow_handlers_time_out() {
        let router = Router::new().route(
            "/api/v1/catalog/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let client = peers_with(router).client("ordering", "catalog").expect("client");
        let err = client
            .get("/api/v1/catalog/slow")
            .timeout(Duration::from_millis(50))
            .send()
            .await
            .expect_err("timeout");
        assert!(matches!(err, CallError::Timeout));
    }
}
