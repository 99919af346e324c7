//! `emporium serve --service gateway`: the process browsers and API clients talk to in the
//! production topology. It proxies the API to the seven context processes, serves the web pages
//! (which call those processes over HTTP) and puts the same edge in front as embedded mode has.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use gateway::{EdgeConfig, GatewayConfig, RateLimiter, Upstream};
use platform::auth::KeySet;
use platform::client::{LocalRouter, Peers};
use platform::config::{ConfigError, ConfigSource};
use platform::http::HttpLimits;

use crate::app::Settings;

/// How often the gateway re-reads identity's public keys (an unknown `kid` triggers a fetch at once).
const JWKS_REFRESH: Duration = Duration::from_secs(60);
/// How much longer than the upstream deadline a page waits for one API call.
const PAGE_CALL_MARGIN: Duration = Duration::from_millis(500);

/// The gateway's router: proxy and aggregates, web pages, the platform stack, and the edge.
pub async fn build_gateway(settings: &Settings, src: &ConfigSource) -> anyhow::Result<Router> {
    platform::metrics::install();
    let config = GatewayConfig::from_source(src)?;
    let edge = EdgeConfig::from_source(src, &settings.platform.public_url)?;
    let keys = KeySet::from_jwks_url(
        format!("{}/.well-known/jwks.json", config.upstream_url(Upstream::Identity)),
        JWKS_REFRESH,
    );
    // Replicas must agree on every client's budget, or N replicas would allow N times the limit.
    let redis_url = settings.infra.redis_url.as_deref().ok_or_else(|| {
        ConfigError::new(
            "REDIS_URL",
            "is required for the gateway: its replicas share one rate-limit budget per client (e.g. redis://redis:6379)",
        )
    })?;
    let limiter = RateLimiter::redis(redis_url, &settings.infra.namespace, &edge).await?;
    // Every replica must read every other's session cookies: the key cannot be made up here.
    let mut web_config = web::WebConfig::from_source(src, &settings.platform.public_url, false)?;
    // A page gives up just after the proxy's own deadline: the proxy answers first (a 504 that
    // counts against the upstream's breaker), so a hung context trips the breaker for pages too.
    web_config.call_timeout = config.timeout + PAGE_CALL_MARGIN;
    let upstream_urls: BTreeMap<String, String> = config
        .upstreams
        .iter()
        .map(|(upstream, url)| (upstream.name().to_owned(), url.clone()))
        .collect();
    // Health and metrics of each context, for the admin status page: straight to the process.
    let ops_peers = Peers::new(
        LocalRouter::new(),
        Vec::<String>::new(),
        upstream_urls,
        settings.infra.service_secret.clone(),
    );
    // The pages' API calls go through this process's own proxy (in-process, no socket): the same
    // deadline, retries and circuit breaker as API clients get.
    let proxy = LocalRouter::new();
    let peers = Peers::new(
        proxy.clone(),
        Upstream::ALL.iter().map(|u| u.name().to_owned()),
        BTreeMap::new(),
        settings.infra.service_secret.clone(),
    );
    // The dev mailbox is part of the document only when notifications serves one.
    // It is refused on a listener that is not loopback, like on the context itself.
    let dev_mailbox = crate::cli::dev_mailbox_setting(src, settings.platform.listen, false)?;
    let doc = crate::api_doc::served(dev_mailbox);

    let web = web::WebState::with_ops_peers(web_config, peers, ops_peers);
    let mut router = gateway::proxy_router(config, doc).merge(web::router_with_state(web));
    if let Some(console) = platform::console::installed() {
        router = router.merge(platform::http::tag_routes(
            platform::console::router(console, settings.platform.metrics_token.clone()),
            "platform",
        ));
    }
    let limits = HttpLimits {
        max_body_bytes: settings.platform.max_body_bytes,
        request_timeout: settings.platform.request_timeout,
    };
    let wiring = platform::http::Wiring {
        trust_forwarded_for: (settings.platform.trusted_proxy_hops > 0).then_some(platform::http::TrustForwardedFor {
            hops: settings.platform.trusted_proxy_hops,
        }),
        ..Default::default()
    };
    let router = platform::http::with_platform_stack(router, limits, wiring);
    proxy.set(router.clone());
    tracing::info!(
        limiter = limiter.backend_name(),
        per_minute = edge.rate_limit.map_or(0, |q| q.per_minute),
        cors_origins = edge.cors_origins.len(),
        hsts = edge.hsts,
        "gateway edge configured"
    );
    Ok(gateway::with_edge(router, &edge, keys, limiter))
}

/// Serves the gateway until SIGINT/SIGTERM, then drains in-flight requests.
pub async fn serve(settings: &Settings, src: &ConfigSource) -> anyhow::Result<()> {
    let router = build_gateway(settings, src).await?;
    let listen = settings.platform.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}: is another process using it? Set EMPORIUM_LISTEN or --listen")
    })?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        mode = "gateway",
        %addr,
        "Emporium gateway is ready on http://{addr} (shop: http://{addr}/, API docs: http://{addr}/docs, upstreams: http://{addr}/health/ready)"
    );
    platform::http::serve(
        listener,
        router,
        platform::http::shutdown_signal(),
        settings.platform.shutdown_grace,
    )
    .await
    .context("serving HTTP")?;
    tracing::info!("stopped cleanly");
    Ok(())
}
