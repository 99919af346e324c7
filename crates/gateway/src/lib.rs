//! The gateway context: what stands between the internet and the contexts.
//!
//! - [`edge`]: security headers, CORS, the per-client rate limit and the first check of bearer
//!   tokens. Every process that faces browsers wraps its router with [`with_edge`], the embedded
//!   app and the gateway process alike, so both topologies answer the same way.
//! - [`proxy`]: the production reverse proxy (`emporium serve --service gateway`) in front of the
//!   seven context processes, with timeouts, retries of safe requests and a circuit breaker per
//!   upstream, plus the aggregates (readiness of every upstream, the merged API document).
//! - [`cache`]: the proxy's micro-cache of answers the contexts mark as shared-cacheable.

pub mod breaker;
pub mod cache;
pub mod edge;
pub mod forwarding;
pub mod limiter;
pub mod proxy;
pub mod routes;
pub mod upstream;

pub use edge::{EdgeConfig, with_edge};
pub use limiter::RateLimiter;
pub use proxy::{GatewayConfig, proxy_router};
pub use routes::Upstream;
