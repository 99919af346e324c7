//! The payments context: card tokenization, payments (authorize, capture) and refunds through a
//! [`provider::PaymentProvider`] (the built-in simulated one, or a Stripe-like adapter), a ledger
//! of every money movement, signed provider webhooks, and idempotency on every write a caller may
//! retry.
//!
//! Served under `/api/v1/payments/*`. Publishes `payments.payment.captured`,
//! `payments.payment.failed` and `payments.refund.completed` through its outbox.
//! Card numbers are never stored or logged: only brand, last four digits, expiry and the
//! provider's token.

pub mod api;
pub mod direct;
pub mod domain;
pub mod events;
pub mod privacy;
pub mod provider;
pub mod service;
pub mod store;
pub mod stripe;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use contracts::api::payments::PaymentsApi;
use contracts::events::privacy::{PaymentsErased, PaymentsExported};
use platform::auth::KeySet;
use platform::client::Peers;
use platform::config::{ConfigError, ConfigSource};
use platform::context::{Context, ContextDeps, Migrations, Worker};
use platform::db::{Db, DbError};
use rand::RngCore;

use crate::domain::Currency;
use crate::provider::{FaultInjectingProvider, PaymentProvider, SimulatedProvider};
pub use crate::service::PaymentsService;

pub const CONTEXT: &str = "payments";

/// Which payment provider payments talks to (`EMPORIUM_PAYMENTS_PROVIDER`).
#[derive(Debug, Clone)]
pub enum ProviderChoice {
    /// Built in: test cards, no network, card data tokenised on the server.
    Simulated,
    /// Stripe's PaymentIntents API; cards are tokenised in the shopper's browser.
    Stripe(stripe::StripeConfig),
}

/// Payments' settings; every one is listed with its default in docs/configuration.md.
#[derive(Clone)]
pub struct PaymentsConfig {
    /// `simulated` (default) or `stripe` with its `EMPORIUM_PAYMENTS_STRIPE_*` settings.
    pub provider: ProviderChoice,
    /// Accepted ISO 4217 currencies (`EMPORIUM_PAYMENTS_CURRENCIES`, `EUR,USD,GBP`).
    pub currencies: Vec<Currency>,
    /// HMAC secret of provider webhooks (`EMPORIUM_PAYMENTS_WEBHOOK_SECRET`; default: random per
    /// process, so webhooks only verify when it is set).
    pub webhook_secret: Vec<u8>,
    /// How long the simulated provider takes to answer for the slow test card
    /// (`EMPORIUM_PAYMENTS_SIMULATED_DELAY_MS`, 3000).
    pub simulated_delay: Duration,
    /// How long a request waits for the provider before answering 202 `processing`
    /// (`EMPORIUM_PAYMENTS_PROVIDER_WAIT_MS`, 1500).
    pub provider_wait: Duration,
    /// Payments processing (refunds pending) longer than this are re-driven, checked as often
    /// (`EMPORIUM_PAYMENTS_RECONCILE_SECS`, 15).
    pub reconcile_after: Duration,
}

impl std::fmt::Debug for PaymentsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentsConfig")
            .field("provider", &self.provider)
            .field("currencies", &self.currencies)
            .field("webhook_secret", &"<redacted>")
            .field("simulated_delay", &self.simulated_delay)
            .field("provider_wait", &self.provider_wait)
            .field("reconcile_after", &self.reconcile_after)
            .finish()
    }
}

fn random_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    secret
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            provider: ProviderChoice::Simulated,
            currencies: vec![Currency::EUR, Currency::USD, Currency::GBP],
            webhook_secret: random_secret(),
            simulated_delay: Duration::from_millis(3000),
            provider_wait: Duration::from_millis(1500),
            reconcile_after: Duration::from_secs(15),
        }
    }
}

impl PaymentsConfig {
    pub fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        let currencies = match src.raw("EMPORIUM_PAYMENTS_CURRENCIES") {
            None => Self::default().currencies,
            Some(raw) => {
                domain::parse_currency_list(raw).map_err(|m| ConfigError::new("EMPORIUM_PAYMENTS_CURRENCIES", m))?
            }
        };
        let webhook_secret = match src.raw("EMPORIUM_PAYMENTS_WEBHOOK_SECRET") {
            None => random_secret(),
            Some(s) if s.len() < 16 => {
                return Err(ConfigError::new(
                    "EMPORIUM_PAYMENTS_WEBHOOK_SECRET",
                    "must be at least 16 characters",
                ));
            }
            Some(s) => s.as_bytes().to_vec(),
        };
        Ok(Self {
            provider: provider_choice(src)?,
            currencies,
            webhook_secret,
            simulated_delay: Duration::from_millis(src.number_in(
                "EMPORIUM_PAYMENTS_SIMULATED_DELAY_MS",
                3000,
                0..=600_000,
            )?),
            provider_wait: Duration::from_millis(src.number_in(
                "EMPORIUM_PAYMENTS_PROVIDER_WAIT_MS",
                1500,
                50..=60_000,
            )?),
            reconcile_after: src.seconds("EMPORIUM_PAYMENTS_RECONCILE_SECS", 15, 1..=3600)?,
        })
    }
}

/// Reads `EMPORIUM_PAYMENTS_PROVIDER` and, for Stripe, its keys (both required: a shop that
/// starts without them would fail every checkout).
fn provider_choice(src: &ConfigSource) -> Result<ProviderChoice, ConfigError> {
    use contracts::api::payments::ProviderKind;
    let kind = ProviderKind::from_setting(src.raw(ProviderKind::SETTING))
        .map_err(|m| ConfigError::new(ProviderKind::SETTING, m))?;
    match kind {
        ProviderKind::Simulated => Ok(ProviderChoice::Simulated),
        ProviderKind::Stripe => {
            let required = |var: &'static str, prefixes: &[&str]| -> Result<String, ConfigError> {
                let value = src
                    .raw(var)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| ConfigError::new(var, "is required with EMPORIUM_PAYMENTS_PROVIDER=stripe"))?;
                if !prefixes.iter().any(|p| value.starts_with(p)) || value.len() < 12 {
                    return Err(ConfigError::new(
                        var,
                        format!("must be a Stripe key starting with {}", prefixes.join(" or ")),
                    ));
                }
                Ok(value.to_owned())
            };
            let secret_key = required("EMPORIUM_PAYMENTS_STRIPE_SECRET_KEY", &["sk_", "rk_"])?;
            let webhook_secret = required("EMPORIUM_PAYMENTS_STRIPE_WEBHOOK_SECRET", &["whsec_"])?;
            let api_base = match src.raw("EMPORIUM_PAYMENTS_STRIPE_API_BASE") {
                None => "https://api.stripe.com".to_owned(),
                Some(raw) => {
                    stripe::check_api_base(raw).map_err(|m| ConfigError::new("EMPORIUM_PAYMENTS_STRIPE_API_BASE", m))?
                }
            };
            Ok(ProviderChoice::Stripe(stripe::StripeConfig {
                secret_key,
                webhook_secret: webhook_secret.into_bytes(),
                api_base,
                timeout: Duration::from_millis(src.number_in(
                    "EMPORIUM_PAYMENTS_STRIPE_TIMEOUT_MS",
                    10_000,
                    500..=60_000,
                )?),
            }))
        }
    }
}

/// Payments's schema, per backend.
pub static MIGRATIONS: platform::context::Migrations = platform::migrations!();

/// Applies payments's migrations (forward-only) and the event bus tables to its database.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    MIGRATIONS.run(CONTEXT, db).await
}

/// A running payments context.
pub struct Payments {
    service: Arc<PaymentsService>,
    keys: KeySet,
    db: Db,
    outbox: platform::events::Outbox,
}

impl Payments {
    /// The payments use cases (for tests and the CLI).
    pub fn service(&self) -> Arc<PaymentsService> {
        self.service.clone()
    }
}

#[async_trait::async_trait]
impl Context for Payments {
    const NAME: &'static str = CONTEXT;
    type Config = PaymentsConfig;

    fn migrations() -> &'static Migrations {
        &MIGRATIONS
    }

    /// Opens the store and starts the outbox relay and the configured provider.
    async fn start(db: &Db, config: PaymentsConfig, deps: &ContextDeps) -> anyhow::Result<Self> {
        let (store, ledger) = store::open(db);
        let provider: Arc<dyn PaymentProvider> = match &config.provider {
            ProviderChoice::Simulated => Arc::new(SimulatedProvider::new(
                ledger,
                config.simulated_delay,
                config.webhook_secret.clone(),
            )),
            ProviderChoice::Stripe(stripe) => {
                tracing::info!(api_base = %stripe.api_base, "payments go through Stripe");
                Arc::new(stripe::StripeProvider::new(stripe.clone())?)
            }
        };
        let provider = FaultInjectingProvider::wrap(provider, deps.faults.clone());
        service::describe_metrics();
        let outbox = deps.events.start_relay(CONTEXT, db);
        let service = Arc::new(PaymentsService::new(store, provider, config, outbox.clone()));
        Ok(Self {
            service,
            keys: deps.keys.clone(),
            db: db.clone(),
            outbox,
        })
    }

    fn router(&self) -> Router {
        let (router, _) = api::routes().with_state(self.service.clone()).split_for_parts();
        platform::http::tag_routes(router, CONTEXT)
    }

    fn offer_api(&self, peers: &Peers) {
        let (service, keys) = (self.service.clone(), self.keys.clone());
        peers.offer::<dyn PaymentsApi>(CONTEXT, move |caller| {
            Arc::new(direct::DirectApi::new(service.clone(), keys.clone(), caller))
        });
    }

    /// Erasures and exports.
    fn consumers(&self) -> Vec<platform::context::Consumer> {
        vec![platform::privacy::answers::<PaymentsErased, PaymentsExported>(
            CONTEXT,
            &self.db,
            self.outbox.clone(),
            privacy::open(&self.db),
        )]
    }

    /// The reconciler (which first settles whatever a previous process left processing), and
    /// the purge of idempotency keys older than a day.
    fn workers(&self) -> Vec<Worker> {
        let every = self.service.config().reconcile_after;
        vec![
            Worker::every("reconciler", every, &self.service, |service| async move {
                match service.reconcile().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(settled = n, "reconciled payments left with the provider"),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "reconciling payments failed; retrying next tick")
                    }
                }
            }),
            Worker::every("idempotency-purge", PURGE_EVERY, &self.service, |service| async move {
                if let Err(e) = service.purge_idempotency_keys().await {
                    tracing::warn!(error = %format!("{e:#}"), "purging idempotency keys failed");
                }
            }),
        ]
    }
}

/// How often idempotency keys older than a day are forgotten.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Payments' OpenAPI description (static: no running context needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::routes().split_for_parts().1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_bounds() {
        let src = ConfigSource::from_pairs(Vec::<(String, String)>::new()).expect("src");
        let c = PaymentsConfig::from_source(&src).expect("defaults");
        assert_eq!(c.currencies.len(), 3);
        assert_eq!(c.simulated_delay, Duration::from_millis(3000));
        assert_eq!(c.provider_wait, Duration::from_millis(1500));
        assert_eq!(c.reconcile_after, Duration::from_secs(15));
        assert_eq!(c.webhook_secret.len(), 32);
        let other = PaymentsConfig::from_source(&src).expect("defaults");
        assert_ne!(c.webhook_secret, other.webhook_secret, "random per process start");
        assert!(!format!("{c:?}").contains(&format!("{:?}", c.webhook_secret)));

        let src = ConfigSource::from_pairs([
            ("EMPORIUM_PAYMENTS_CURRENCIES", "chf, eur"),
            ("EMPORIUM_PAYMENTS_WEBHOOK_SECRET", "whsec_0123456789abcdef"),
        ])
        .expect("src");
        let c = PaymentsConfig::from_source(&src).expect("set");
        assert_eq!(
            c.currencies.iter().map(Currency::as_str).collect::<Vec<_>>(),
            ["CHF", "EUR"]
        );
        assert_eq!(c.webhook_secret, b"whsec_0123456789abcdef");

        assert!(matches!(c.provider, ProviderChoice::Simulated));
        let stripe = [
            ("EMPORIUM_PAYMENTS_PROVIDER", "stripe"),
            ("EMPORIUM_PAYMENTS_STRIPE_SECRET_KEY", "sk_test_0123456789"),
            ("EMPORIUM_PAYMENTS_STRIPE_WEBHOOK_SECRET", "whsec_0123456789"),
        ];
        let c = PaymentsConfig::from_source(&ConfigSource::from_pairs(stripe).expect("src")).expect("stripe");
        let ProviderChoice::Stripe(s) = &c.provider else {
            panic!("stripe chosen")
        };
        assert_eq!(s.api_base, "https://api.stripe.com");
        assert!(!format!("{c:?}").contains("sk_test_0123456789"), "the key never shows");
        for (missing, bad) in [
            (0, ("EMPORIUM_PAYMENTS_STRIPE_SECRET_KEY", "pk_test_0123456789")),
            (1, ("EMPORIUM_PAYMENTS_STRIPE_SECRET_KEY", "")),
            (1, ("EMPORIUM_PAYMENTS_STRIPE_WEBHOOK_SECRET", "secret_0123456789")),
            (2, ("EMPORIUM_PAYMENTS_STRIPE_API_BASE", "http://api.stripe.com")),
        ] {
            let mut pairs: Vec<(&str, &str)> = stripe.to_vec();
            if missing < 2 {
                pairs.retain(|(k, _)| *k != bad.0);
            }
            pairs.push(bad);
            let err = PaymentsConfig::from_source(&ConfigSource::from_pairs(pairs).expect("src")).expect_err(bad.0);
            assert_eq!(err.var, bad.0);
            assert!(
                !err.to_string().contains("0123456789"),
                "secrets are never echoed: {err}"
            );
        }
        let without_key = ConfigSource::from_pairs([("EMPORIUM_PAYMENTS_PROVIDER", "stripe")]).expect("src");
        assert_eq!(
            PaymentsConfig::from_source(&without_key).expect_err("no key").var,
            "EMPORIUM_PAYMENTS_STRIPE_SECRET_KEY"
        );

        for (var, value) in [
            ("EMPORIUM_PAYMENTS_PROVIDER", "paypal"),
            ("EMPORIUM_PAYMENTS_CURRENCIES", "EURO"),
            ("EMPORIUM_PAYMENTS_WEBHOOK_SECRET", "short"),
            ("EMPORIUM_PAYMENTS_SIMULATED_DELAY_MS", "-1"),
            ("EMPORIUM_PAYMENTS_PROVIDER_WAIT_MS", "10"),
            ("EMPORIUM_PAYMENTS_RECONCILE_SECS", "0"),
        ] {
            let src = ConfigSource::from_pairs([(var, value)]).expect("src");
            let err = PaymentsConfig::from_source(&src).expect_err(var);
            assert_eq!(err.var, var);
            assert!(!err.to_string().contains("whsec"), "secrets are never echoed");
        }
    }
}
