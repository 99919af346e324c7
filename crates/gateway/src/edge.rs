//! The edge: what every request meets first, in embedded mode and in the gateway process alike.
//! Security headers on every response, CORS from configuration, a per-client rate limit, and a
//! first check of bearer tokens on API calls (the contexts still verify tokens themselves: the
//! edge only turns forged or expired tokens away before they cost a context anything).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use platform::Problem;
use platform::auth::{KeySet, TokenError};
use platform::config::{ConfigError, ConfigSource};
use platform::http::X_REQUEST_ID;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::limiter::{Decision, Quota, RateLimiter};

/// The policy for pages: everything from this origin only, no inline scripts or styles, no
/// framing. `img-src https:` lets product images live on a CDN.
pub const HTML_CSP: &str = "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; \
     connect-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'none'";
/// The policy for API answers: JSON needs nothing; the printable invoice (HTML under `/api`)
/// carries its own inline stylesheet and no script.
pub const API_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const PERMISSIONS_POLICY: &str = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()";
const HSTS: &str = "max-age=31536000; includeSubDomains";

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Edge settings, read once at start-up.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Origins allowed to call the API from a browser (`EMPORIUM_CORS_ORIGINS`); empty: no CORS.
    pub cors_origins: Vec<HeaderValue>,
    /// Per-client budget (`EMPORIUM_RATE_LIMIT_PER_MINUTE`, `EMPORIUM_RATE_LIMIT_BURST`); `None`: off.
    pub rate_limit: Option<Quota>,
    /// `Strict-Transport-Security` on every answer (public URL on https, or `EMPORIUM_HSTS`).
    pub hsts: bool,
    /// Largest request body (`EMPORIUM_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Proxies in front whose `X-Forwarded-For` entries count (`EMPORIUM_TRUSTED_PROXY_HOPS`,
    /// or 1 for `EMPORIUM_TRUST_FORWARDED_FOR`); 0: the peer is the client.
    pub trusted_proxy_hops: usize,
}

impl EdgeConfig {
    pub fn from_source(src: &ConfigSource, public_url: &str) -> Result<Self, ConfigError> {
        let cors_origins = parse_origins(src.raw("EMPORIUM_CORS_ORIGINS").unwrap_or(""))
            .map_err(|message| ConfigError::new("EMPORIUM_CORS_ORIGINS", message))?;
        let per_minute = src.number_in("EMPORIUM_RATE_LIMIT_PER_MINUTE", 6000, 0..=60_000_000)?;
        let burst = src.number_in("EMPORIUM_RATE_LIMIT_BURST", 600, 1..=1_000_000)?;
        let rate_limit = (per_minute > 0).then_some(Quota {
            per_minute: per_minute as u32,
            burst: burst as u32,
        });
        Ok(Self {
            cors_origins,
            rate_limit,
            hsts: src.flag("EMPORIUM_HSTS", public_url.starts_with("https://"))?,
            max_body_bytes: src.number_in("EMPORIUM_MAX_BODY_BYTES", 1024 * 1024, 1024..=64 * 1024 * 1024)? as usize,
            trusted_proxy_hops: platform::config::trusted_proxy_hops(src)?,
        })
    }
}

/// `https://shop.example.com, http://localhost:3000` → the exact origins a browser sends.
pub fn parse_origins(text: &str) -> Result<Vec<HeaderValue>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(parse_origin)
        .collect()
}

fn parse_origin(origin: &str) -> Result<HeaderValue, String> {
    if origin == "*" {
        return Err(
            "`*` is not allowed: the API accepts credentials (cookies, bearer tokens), so list each origin".into(),
        );
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err(format!("`{origin}` is not an origin like https://shop.example.com"));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{origin}`: the scheme must be http or https"));
    }
    let valid_host = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid_host {
        return Err(format!(
            "`{origin}` must be scheme://host[:port], with no path, trailing slash or wildcard"
        ));
    }
    HeaderValue::from_str(&origin.to_ascii_lowercase()).map_err(|_| format!("`{origin}` is not a valid origin"))
}

/// What the edge middleware needs per request.
struct EdgeState {
    keys: KeySet,
    limiter: RateLimiter,
    trusted_proxy_hops: usize,
    max_body_bytes: usize,
    hsts: bool,
}

/// Wraps a finished router (apply it last, outside `platform::http::with_platform_stack`) with
/// the edge: security headers outermost (so even refusals carry them), then CORS (preflights are
/// answered here), then the rate limit and the bearer-token check.
pub fn with_edge(router: Router, config: &EdgeConfig, keys: KeySet, limiter: RateLimiter) -> Router {
    describe_metrics();
    let state = Arc::new(EdgeState {
        keys,
        limiter,
        trusted_proxy_hops: config.trusted_proxy_hops,
        max_body_bytes: config.max_body_bytes,
        hsts: config.hsts,
    });
    // `router` comes from `platform::http::with_platform_stack`: no routes, one fallback service.
    // `Router::layer` wraps that service, so the edge is once around the router (see
    // `platform::http::around_router`) without another router in front of it: each router level
    // splits and rebuilds the request, looks its path up twice and records the wildcard match.
    debug_assert!(!router.has_routes(), "the edge wraps the finished, stacked router");
    match cors_layer(&config.cors_origins) {
        Some(cors) => {
            let hsts = config.hsts;
            let outer = tower::ServiceBuilder::new().layer(middleware::from_fn(move |req: Request, next: Next| {
                security_headers(hsts, req, next)
            }));
            let checks =
                middleware::from_fn_with_state(state, |State(edge): State<Arc<EdgeState>>, req, next| async move {
                    edge_check(&edge, req, next).await
                });
            router.layer(outer.layer(cors).layer(checks))
        }
        // No CORS layer to sit between them: one layer does all three jobs, in the same order.
        // Each layer costs a boxed future and a clone of the router per request.
        None => router.layer(middleware::from_fn_with_state(state, edge_without_cors)),
    }
}

/// Security headers around [`preflight_refusal`] around [`edge_check`], as one layer.
async fn edge_without_cors(State(edge): State<Arc<EdgeState>>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut response = if is_preflight(&req) {
        preflight_refusal()
    } else {
        edge_check(&edge, req, next).await
    };
    apply_security_headers(response.headers_mut(), api, edge.hsts);
    response
}

fn cors_layer(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-cart-token"),
                X_REQUEST_ID,
            ])
            .expose_headers([
                header::ETAG,
                header::LOCATION,
                header::RETRY_AFTER,
                X_REQUEST_ID,
                platform::http::X_TRACE_ID,
                platform::http::TRACERESPONSE,
                HeaderName::from_static("x-cart-token"),
                HeaderName::from_static("idempotent-replayed"),
                RATELIMIT_LIMIT,
                RATELIMIT_REMAINING,
                RATELIMIT_RESET,
                RATELIMIT_POLICY,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`).
pub fn is_preflight(req: &Request) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Without `EMPORIUM_CORS_ORIGINS` no other origin may call the API from a browser: a preflight
/// is refused as browsers expect (no CORS headers), with a problem saying why, instead of
/// reaching the routes and coming back as a puzzling 405.
fn preflight_refusal() -> Response {
    Problem::forbidden(
        "cross-origin requests are not allowed: this server lists no origins (set EMPORIUM_CORS_ORIGINS to allow a \
         browser app on another origin)",
    )
    .into_response()
}

async fn security_headers(hsts: bool, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    apply_security_headers(response.headers_mut(), api, hsts);
    response
}

/// Adds the security headers a handler has not set itself (the API docs page brings its own
/// Content-Security-Policy, for instance).
pub fn apply_security_headers(headers: &mut HeaderMap, api: bool, hsts: bool) {
    // Built at compile time: `from_static` checks every byte each time it runs, and these
    // ~300 bytes go out with every answer (4% of a cached read's instructions).
    static API_POLICY: HeaderValue = HeaderValue::from_static(API_CSP);
    static HTML_POLICY: HeaderValue = HeaderValue::from_static(HTML_CSP);
    static DEFAULTS: [(HeaderName, HeaderValue); 4] = [
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(PERMISSIONS_POLICY),
        ),
    ];
    static HSTS_VALUE: HeaderValue = HeaderValue::from_static(HSTS);
    let csp = if api { &API_POLICY } else { &HTML_POLICY };
    // `entry` hashes each name once; a look-up and then an insert hashed it twice.
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert_with(|| csp.clone());
    for (name, value) in &DEFAULTS {
        headers.entry(name).or_insert_with(|| value.clone());
    }
    if hsts {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| HSTS_VALUE.clone());
    }
}

/// Probes and scrapes are never limited: an orchestrator must always see the process.
pub fn is_exempt(path: &str) -> bool {
    path.starts_with("/health/") || path == "/metrics"
}

/// API paths whose bearer token the edge checks. Not the sign-in machinery (`/api/v1/auth/...`):
/// login, refresh and friends take no bearer, and a client that attaches its expired token to
/// every call must still be able to refresh it. Identity judges those paths itself.
pub fn judges_bearer(path: &str) -> bool {
    path.starts_with("/api/") && !path.starts_with("/api/v1/auth/")
}

/// The bearer token of a request, when it carries one (other schemes are left to the contexts).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The client's address: the entry the trusted proxies wrote in `X-Forwarded-For`, else the
/// peer (the same rule as `platform::http::ClientIp`, which the edge runs before).
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, trusted_proxy_hops: usize) -> IpAddr {
    platform::http::forwarded_client(headers, trusted_proxy_hops)
        .unwrap_or_else(|| peer.map_or(IpAddr::from([127, 0, 0, 1]), |p| p.ip()))
}

fn token_reason(e: &TokenError) -> &'static str {
    match e {
        TokenError::Missing => "missing",
        TokenError::Malformed => "malformed",
        TokenError::UnknownKey => "unknown_key",
        TokenError::Expired => "expired",
        TokenError::Invalid => "invalid",
    }
}

/// A request id the platform stack will keep (it keeps a sane one), so the edge's own answers
/// and the rest of the handling share it.
fn ensure_request_id(headers: &mut HeaderMap) -> String {
    let sane = headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    sane.unwrap_or_else(|| {
        let (id, value) = platform::http::new_request_id();
        if let Some(value) = value {
            headers.insert(X_REQUEST_ID, value);
        }
        id
    })
}

async fn edge_check(edge: &EdgeState, mut req: Request, next: Next) -> Response {
    if is_exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_owned();
    let request_id = ensure_request_id(req.headers_mut());
    let verdict = match bearer(req.headers()) {
        Some(token) => Some(edge.keys.verify_fresh(token).await),
        None => None,
    };
    // A signed-in caller has a budget of their own wherever they connect from; everyone else
    // shares their address's.
    let decision = match edge.limiter.quota() {
        None => None,
        Some(_) => {
            let client = match &verdict {
                Some(Ok(claims)) => format!("user:{}", claims.sub),
                _ => {
                    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
                    format!("ip:{}", client_ip(req.headers(), peer, edge.trusted_proxy_hops))
                }
            };
            edge.limiter.check(&client).await
        }
    };
    let refusal = match (&decision, &verdict) {
        (Some(d), _) if !d.allowed => {
            metrics::counter!("gateway_rate_limited_total").increment(1);
            let wait = Decision::seconds(d.retry_after).max(1);
            Some(Problem::too_many_requests(
                wait,
                format!("too many requests from this client; retry in {wait} s"),
            ))
        }
        (_, Some(Err(e))) if judges_bearer(&path) => {
            metrics::counter!("gateway_edge_rejected_total", "reason" => token_reason(e)).increment(1);
            Some(Problem::unauthorized(format!("{e}; sign in again")))
        }
        // A declared length over the limit is refused before a byte is read (bodies without one
        // are counted as they stream, by the platform's extractors and by the proxy).
        _ if declared_length(req.headers()).is_some_and(|n| n > edge.max_body_bytes as u64) => {
            metrics::counter!("gateway_edge_rejected_total", "reason" => "body_too_large").increment(1);
            Some(payload_too_large(edge.max_body_bytes))
        }
        _ => None,
    };
    let refused_here = refusal.is_some();
    let mut response = match refusal {
        Some(mut problem) => {
            problem.instance = Some(path);
            problem.request_id = Some(request_id.clone());
            let mut response = problem.into_response();
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(X_REQUEST_ID, value);
            }
            response
        }
        None => next.run(req).await,
    };
    // An answer refused further in (a login lockout, identity's per-address budget) has its own
    // Retry-After, and maybe its own RateLimit-* fields: the edge's budget ("598 left") would
    // contradict them, so it stays off such answers.
    let refused_inside = !refused_here
        && (response.status() == axum::http::StatusCode::TOO_MANY_REQUESTS
            || response.headers().contains_key(RATELIMIT_LIMIT));
    if let Some(d) = decision
        && !refused_inside
    {
        rate_limit_headers(response.headers_mut(), &d, edge.limiter.quota());
    }
    response
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// 413 for a body over `EMPORIUM_MAX_BODY_BYTES` (the same answer the contexts give).
pub fn payload_too_large(limit: usize) -> Problem {
    Problem::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "Payload too large",
    )
    .with_detail(format!(
        "the request body exceeds the configured limit of {limit} bytes (EMPORIUM_MAX_BODY_BYTES)"
    ))
}

/// `RateLimit-*` headers (IETF draft "RateLimit header fields for HTTP").
fn rate_limit_headers(headers: &mut HeaderMap, d: &Decision, quota: Option<Quota>) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(Decision::seconds(d.reset)));
    if let Some(q) = quota
        && let Ok(value) = HeaderValue::from_str(&format!("{};w=60;burst={}", q.per_minute, q.burst))
    {
        headers.insert(RATELIMIT_POLICY, value);
    }
}

fn describe_metrics() {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_counter!(
            "gateway_edge_rejected_total",
            "API calls refused with 401 at the edge, by why the bearer token failed."
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(pairs: &[(&str, &str)]) -> ConfigSource {
        ConfigSource::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).expect("source")
    }

    #[test]
    fn defaults_limit_and_set_hsts_from_the_public_url() {
        let c = EdgeConfig::from_source(&src(&[]), "http://127.0.0.1:8080").expect("config");
        assert_eq!(
            c.rate_limit,
            Some(Quota {
                per_minute: 6000,
                burst: 600
            })
        );
        assert!(c.cors_origins.is_empty());
        assert!(!c.hsts);
        assert!(
            EdgeConfig::from_source(&src(&[]), "https://shop.example.com")
                .expect("config")
                .hsts
        );
        let forced = EdgeConfig::from_source(&src(&[("EMPORIUM_HSTS", "true")]), "http://x").expect("config");
        assert!(forced.hsts);
        let off =
            EdgeConfig::from_source(&src(&[("EMPORIUM_RATE_LIMIT_PER_MINUTE", "0")]), "http://x").expect("config");
        assert_eq!(off.rate_limit, None);
    }

    #[test]
    fn cors_origins_must_be_exact() {
        let ok = parse_origins(" https://shop.example.com, http://localhost:3000 ,").expect("origins");
        assert_eq!(ok, vec!["https://shop.example.com", "http://localhost:3000"]);
        for bad in [
            "*",
            "shop.example.com",
            "ftp://x",
            "https://x.com/",
            "https://*.x.com",
            "https://x.com/path",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad} must be refused");
        }
        let err = EdgeConfig::from_source(&src(&[("EMPORIUM_CORS_ORIGINS", "*")]), "http://x").expect_err("wildcard");
        assert_eq!(err.var, "EMPORIUM_CORS_ORIGINS");
        let err = EdgeConfig::from_source(&src(&[("EMPORIUM_RATE_LIMIT_BURST", "0")]), "http://x").expect_err("burst");
        assert_eq!(err.var, "EMPORIUM_RATE_LIMIT_BURST");
    }

    #[test]
    fn security_headers_fill_gaps_without_overriding() {
        let mut page = HeaderMap::new();
        apply_security_headers(&mut page, false, true);
        assert_eq!(page[header::CONTENT_SECURITY_POLICY], HTML_CSP);
        assert_eq!(page[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(page[header::STRICT_TRANSPORT_SECURITY], HSTS);
        assert!(page.contains_key("permissions-policy"));

        let mut docs = HeaderMap::new();
        docs.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );
        apply_security_headers(&mut docs, false, false);
        assert_eq!(docs[header::CONTENT_SECURITY_POLICY], "default-src 'self'");
        assert!(!docs.contains_key(header::STRICT_TRANSPORT_SECURITY));

        let mut api = HeaderMap::new();
        apply_security_headers(&mut api, true, false);
        assert_eq!(api[header::CONTENT_SECURITY_POLICY], API_CSP);
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let mut h = HeaderMap::new();
        // The client wrote 6.6.6.6; the one trusted proxy appended the address it saw.
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.9"));
        let peer = Some(SocketAddr::from(([10, 0, 0, 1], 5000)));
        assert_eq!(client_ip(&h, peer, 0), IpAddr::from([10, 0, 0, 1]));
        assert_eq!(client_ip(&h, peer, 1), IpAddr::from([203, 0, 113, 9]));
        assert_eq!(client_ip(&h, peer, 2), IpAddr::from([6, 6, 6, 6]));
        assert_eq!(client_ip(&HeaderMap::new(), None, 1), IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn only_bearer_tokens_are_checked() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwdw=="));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc.def.ghi"));
        assert_eq!(bearer(&h), Some("abc.def.ghi"));
    }

    #[test]
    fn tokens_are_judged_on_api_calls_except_sign_in() {
        assert!(judges_bearer("/api/v1/users/me"));
        assert!(judges_bearer("/api/v1/catalog/products"));
        assert!(!judges_bearer("/api/v1/auth/refresh"));
        assert!(!judges_bearer("/api/v1/auth/login"));
        assert!(!judges_bearer("/account"), "pages use the session cookie");
    }

    #[test]
    fn health_and_metrics_are_exempt() {
        assert!(is_exempt("/health/ready"));
        assert!(is_exempt("/metrics"));
        assert!(!is_exempt("/api/v1/catalog/products"));
        assert!(!is_exempt("/healthz"));
    }
}
