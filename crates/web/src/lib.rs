//! The web application: the storefront and the admin console, rendered on the server.
//!
//! Pages never touch a database. They call the contexts' JSON APIs through
//! [`platform::client::Peers`] as the signed-in user: in embedded mode that is a call into the
//! process's own router, in the gateway process it is HTTP to the upstream. So a page shows
//! exactly what the API allows, and every rule (prices, stock, roles) lives in one place.
//!
//! Browsers hold a session in an encrypted cookie ([`session`]); every form carries a CSRF
//! token ([`forms`]). Templates are minijinja with HTML autoescaping ([`render`]).

pub mod account;
pub mod admin;
pub mod api;
pub mod assets;
pub mod countries;
pub mod display;
pub mod error;
pub mod forms;
pub mod render;
pub mod session;
pub mod storefront;

use std::sync::Arc;

use axum::Router;
use platform::client::Peers;
use platform::config::{ConfigError, ConfigSource};

pub use error::PageError;
pub use forms::{FieldErrors, Form};
pub use session::{Session, SessionUser};

/// The caller name the web pages use for their API calls (logs and metrics).
pub const CALLER: &str = "web";

/// Settings of the web pages.
#[derive(Clone)]
pub struct WebConfig {
    /// Encrypts and authenticates the session cookie. Replicas behind one address share it.
    pub session_key: cookie::Key,
    /// Mark cookies `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Where the site is reached, without a trailing slash.
    pub public_url: String,
    /// `EMPORIUM_METRICS_TOKEN`: the status page scrapes each context's `/metrics` with it.
    pub metrics_token: Option<String>,
    /// How long a page waits for one API call before showing "temporarily unavailable". The
    /// gateway sets it just above its upstream deadline, so the proxy (and its breaker) always
    /// decides first.
    pub call_timeout: std::time::Duration,
    /// How checkout takes a new card: typed into the page (simulated provider), or in Stripe's
    /// own form (Stripe.js) so the number never reaches Emporium.
    pub card_entry: CardEntry,
}

/// How the storefront takes a new card (`EMPORIUM_PAYMENTS_PROVIDER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardEntry {
    /// Card fields in the checkout form, sent to payments (which tokenises them).
    Typed,
    /// Stripe.js in the shopper's browser turns the card into a token; only the token is posted.
    Stripe {
        /// `EMPORIUM_PAYMENTS_STRIPE_PUBLISHABLE_KEY` (`pk_…`, public by design).
        publishable_key: String,
        /// `EMPORIUM_PAYMENTS_STRIPE_JS_URL` (`https://js.stripe.com/v3/`).
        js_url: String,
        /// The checkout page's Content-Security-Policy: the shop's, plus Stripe.js's origin for
        /// scripts, frames and its calls.
        csp: String,
    },
}

/// The origin (`scheme://host[:port]`) of an absolute URL.
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    let valid = matches!(scheme, "https" | "http")
        && !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    valid.then(|| &url[..scheme.len() + 3 + end])
}

impl CardEntry {
    fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        use contracts::api::payments::ProviderKind;
        // The same reading as payments', so a typo is refused here too (the storefront may run
        // in a process without payments: the gateway's).
        match ProviderKind::from_setting(src.raw(ProviderKind::SETTING)) {
            Ok(ProviderKind::Simulated) => return Ok(Self::Typed),
            Ok(ProviderKind::Stripe) => {}
            Err(m) => return Err(ConfigError::new(ProviderKind::SETTING, m)),
        }
        const KEY: &str = "EMPORIUM_PAYMENTS_STRIPE_PUBLISHABLE_KEY";
        const JS: &str = "EMPORIUM_PAYMENTS_STRIPE_JS_URL";
        let publishable_key = src
            .raw(KEY)
            .map(str::trim)
            .filter(|k| {
                k.starts_with("pk_") && k.len() > 10 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
            .ok_or_else(|| {
                ConfigError::new(
                    KEY,
                    "is required with EMPORIUM_PAYMENTS_PROVIDER=stripe (the pk_… key of the same account)",
                )
            })?
            .to_owned();
        let js_url = src
            .raw(JS)
            .map(str::trim)
            .unwrap_or("https://js.stripe.com/v3/")
            .to_owned();
        let origin = origin_of(&js_url)
            .filter(|o| {
                o.starts_with("https://") || o.starts_with("http://127.0.0.1") || o.starts_with("http://localhost")
            })
            .ok_or_else(|| ConfigError::new(JS, "must be an https:// URL (http:// only for 127.0.0.1 or localhost)"))?;
        let csp = format!(
            "default-src 'self'; img-src 'self' data: https:; style-src 'self'; \
             script-src 'self' {origin}; frame-src {origin} https://hooks.stripe.com; \
             connect-src 'self' {origin} https://api.stripe.com; form-action 'self'; base-uri 'self'; frame-ancestors 'none'"
        );
        Ok(Self::Stripe {
            publishable_key,
            js_url,
            csp,
        })
    }
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("secure_cookies", &self.secure_cookies)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

const SESSION_KEY_VAR: &str = "EMPORIUM_WEB_SESSION_KEY";

impl WebConfig {
    /// `EMPORIUM_WEB_SESSION_KEY` (128 hex characters). Without it a random key is made up when
    /// `may_generate_key` (one process serves every page, so nothing else must read its cookies;
    /// sessions end with the process); otherwise the setting is required.
    pub fn from_source(src: &ConfigSource, public_url: &str, may_generate_key: bool) -> Result<Self, ConfigError> {
        let session_key = match src.raw(SESSION_KEY_VAR) {
            None | Some("") if may_generate_key => cookie::Key::generate(),
            None | Some("") => {
                return Err(ConfigError::new(
                    SESSION_KEY_VAR,
                    "is required for the web pages in production, the same on every gateway replica (e.g. `openssl rand -hex 64`)",
                ));
            }
            Some(hex_key) => {
                let bytes = hex::decode(hex_key.trim())
                    .map_err(|_| ConfigError::new(SESSION_KEY_VAR, "must be hex (e.g. `openssl rand -hex 64`)"))?;
                if bytes.len() < 64 {
                    return Err(ConfigError::new(
                        SESSION_KEY_VAR,
                        "must be at least 64 bytes (128 hex characters; e.g. `openssl rand -hex 64`)",
                    ));
                }
                cookie::Key::from(&bytes)
            }
        };
        let public_url = public_url.trim_end_matches('/').to_owned();
        Ok(Self {
            session_key,
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            metrics_token: platform::config::metrics_token(src),
            call_timeout: api::CALL_TIMEOUT,
            card_entry: CardEntry::from_source(src)?,
        })
    }
}

/// What every page handler gets.
#[derive(Clone)]
pub struct WebState {
    inner: Arc<WebInner>,
}

struct WebInner {
    config: WebConfig,
    peers: Peers,
    /// Reaches each context's own `/health/ready` and `/metrics` (the admin status page).
    ops_peers: Peers,
    refreshes: api::RefreshSingleFlight,
    rates: display::RatesCache,
}

impl WebState {
    pub fn new(config: WebConfig, peers: Peers) -> Self {
        Self::with_ops_peers(config, peers.clone(), peers)
    }

    /// Pages call the APIs through `peers`, and read each context's health and metrics through
    /// `ops_peers` (in the gateway, `peers` goes through the proxy, whose own `/health/ready`
    /// and `/metrics` are the gateway's).
    pub fn with_ops_peers(config: WebConfig, peers: Peers, ops_peers: Peers) -> Self {
        Self {
            inner: Arc::new(WebInner {
                config,
                peers,
                ops_peers,
                refreshes: api::RefreshSingleFlight::default(),
                rates: display::RatesCache::default(),
            }),
        }
    }

    pub fn ops_peers(&self) -> &Peers {
        &self.inner.ops_peers
    }

    pub fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    pub fn peers(&self) -> &Peers {
        &self.inner.peers
    }

    /// The JSON APIs, called as `session`'s user.
    pub fn api<'a>(&'a self, session: &'a Session) -> api::Api<'a> {
        api::Api::new(self, session)
    }

    pub(crate) fn refreshes(&self) -> &api::RefreshSingleFlight {
        &self.inner.refreshes
    }

    pub(crate) fn rates_cache(&self) -> &display::RatesCache {
        &self.inner.rates
    }
}

/// Every page and asset. Mount it beside the API (it owns `/`, `/static/*` and the page paths).
pub fn router(config: WebConfig, peers: Peers) -> Router {
    router_with_state(WebState::new(config, peers))
}

/// [`router`] with its state built by the caller (see [`WebState::with_ops_peers`]).
pub fn router_with_state(state: WebState) -> Router {
    admin::start(&state);
    let pages = Router::new()
        .merge(storefront::routes())
        .merge(account::routes())
        .merge(admin::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), session::layer))
        .with_state(state);
    // Tagged so that page requests are counted and traced under their route template and the
    // `web` service (untagged, they were all `service="none", route="unmatched"`).
    platform::http::tag_routes(pages.merge(assets::routes()), "web")
}

/// `next` when it is a path on this site, else `/`: redirects taken from user input must not
/// send anyone elsewhere (`//evil.example`, `/\evil.example` and `https://…` are all refused).
pub fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if local { next } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_mode_needs_a_publishable_key_and_widens_the_policy_for_stripe_js_only() {
        let src = |pairs: &[(&str, &str)]| ConfigSource::from_pairs(pairs.to_vec()).expect("src");
        assert_eq!(CardEntry::from_source(&src(&[])), Ok(CardEntry::Typed));
        assert!(
            CardEntry::from_source(&src(&[("EMPORIUM_PAYMENTS_PROVIDER", "strip")])).is_err(),
            "a typo is refused here as payments refuses it"
        );
        let stripe = [
            ("EMPORIUM_PAYMENTS_PROVIDER", "stripe"),
            ("EMPORIUM_PAYMENTS_STRIPE_PUBLISHABLE_KEY", "pk_test_abcdef123"),
        ];
        let Ok(CardEntry::Stripe { js_url, csp, .. }) = CardEntry::from_source(&src(&stripe)) else {
            panic!("stripe entry")
        };
        assert_eq!(js_url, "https://js.stripe.com/v3/");
        assert!(csp.contains("script-src 'self' https://js.stripe.com;"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' https://js.stripe.com https://api.stripe.com;"),
            "{csp}"
        );
        let mut local = stripe.to_vec();
        local.push((
            "EMPORIUM_PAYMENTS_STRIPE_JS_URL",
            "http://127.0.0.1:8420/js.stripe.com/v3/",
        ));
        let Ok(CardEntry::Stripe { csp, .. }) = CardEntry::from_source(&src(&local)) else {
            panic!("local stripe entry")
        };
        assert!(csp.contains("script-src 'self' http://127.0.0.1:8420;"), "{csp}");
        for (var, value) in [
            ("EMPORIUM_PAYMENTS_STRIPE_PUBLISHABLE_KEY", "sk_live_secret_key"),
            ("EMPORIUM_PAYMENTS_STRIPE_PUBLISHABLE_KEY", ""),
            ("EMPORIUM_PAYMENTS_STRIPE_JS_URL", "http://js.stripe.com/v3/"),
            ("EMPORIUM_PAYMENTS_STRIPE_JS_URL", "https://evil.example'; script-src *"),
            ("EMPORIUM_PAYMENTS_STRIPE_JS_URL", "js.stripe.com"),
        ] {
            let mut pairs: Vec<(&str, &str)> = stripe.iter().filter(|(k, _)| *k != var).copied().collect();
            pairs.push((var, value));
            assert_eq!(
                CardEntry::from_source(&src(&pairs)).map_err(|e| e.var),
                Err(var.to_owned()),
                "{value}"
            );
        }
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next("/orders/1?x=2"), "/orders/1?x=2");
        assert_eq!(safe_next("/"), "/");
        for evil in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "evil.example",
            "javascript:alert(1)",
            "/\tevil",
            "",
        ] {
            assert_eq!(safe_next(evil), "/", "{evil:?}");
        }
    }

    #[test]
    fn the_session_key_must_be_long_hex_unless_one_may_be_made_up() {
        let src = |v: &str| ConfigSource::from_pairs([(SESSION_KEY_VAR, v)]).expect("source");
        let none = ConfigSource::from_pairs(Vec::<(String, String)>::new()).expect("source");
        assert!(WebConfig::from_source(&none, "http://x", true).is_ok());
        assert!(WebConfig::from_source(&none, "http://x", false).is_err());
        assert!(WebConfig::from_source(&src("zz"), "http://x", false).is_err());
        assert!(WebConfig::from_source(&src(&"ab".repeat(32)), "http://x", false).is_err());
        let ok = WebConfig::from_source(&src(&"ab".repeat(64)), "https://shop.example/", false).expect("valid");
        assert!(ok.secure_cookies);
        assert_eq!(ok.public_url, "https://shop.example");
    }
}
