//! localstripe, a stateful Stripe-compatible server (PyPI), for the Stripe adapter's tests:
//! `tests/localstripe_server.py` on a random port, killed on drop. It checks nothing about the
//! keys beyond their prefixes, so fixed test keys serve.
//!
//! What it does not do, and the tests therefore do themselves: honour `Idempotency-Key`, and send
//! `charge.refunded` (the tests sign that event as Stripe would).

use std::time::Duration;

use serde_json::Value;
use tokio::process::Child;

use crate::python::{python_for, start_server};

pub const SECRET_KEY: &str = "sk_test_emporium_localstripe";
pub const PUBLISHABLE_KEY: &str = "pk_test_emporium_localstripe";
pub const WEBHOOK_SECRET: &str = "whsec_emporium_localstripe_test";

pub struct LocalStripe {
    pub port: u16,
    http: reqwest::Client,
    _child: Child,
}

impl LocalStripe {
    /// Starts localstripe on a free port. Without Python/localstripe: `None` (skipped, with a
    /// note), or a failure under CI=true.
    pub async fn start() -> Option<Self> {
        let python = python_for("localstripe", "localstripe").await?;
        let (child, port) = start_server(&python, "tests/localstripe_server.py", &[], Duration::from_secs(30)).await;
        Some(Self {
            port,
            http: reqwest::Client::new(),
            _child: child,
        })
    }

    /// `http://127.0.0.1:<port>`, for `EMPORIUM_PAYMENTS_STRIPE_API_BASE`.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The settings that put payments (and the storefront) on this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("EMPORIUM_PAYMENTS_PROVIDER", "stripe".to_owned()),
            ("EMPORIUM_PAYMENTS_STRIPE_SECRET_KEY", SECRET_KEY.to_owned()),
            ("EMPORIUM_PAYMENTS_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
            ("EMPORIUM_PAYMENTS_STRIPE_PUBLISHABLE_KEY", PUBLISHABLE_KEY.to_owned()),
            ("EMPORIUM_PAYMENTS_STRIPE_API_BASE", self.api_base()),
            (
                "EMPORIUM_PAYMENTS_STRIPE_JS_URL",
                format!("{}/js.stripe.com/v3/", self.api_base()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Has localstripe post its events to `url`, signed with [`WEBHOOK_SECRET`].
    pub async fn send_webhooks_to(&self, url: &str) {
        let response = self
            .http
            .post(format!("{}/_config/webhooks/emporium", self.api_base()))
            .form(&[("url", url), ("secret", WEBHOOK_SECRET)])
            .send()
            .await
            .expect("configure localstripe webhook");
        assert!(response.status().is_success(), "webhook config: {}", response.status());
    }

    /// A card token as Stripe.js `createToken` makes it in the browser (publishable key only).
    pub async fn card_token(&self, number: &str) -> String {
        let response = self
            .http
            .post(format!("{}/v1/tokens", self.api_base()))
            .form(&[
                ("card[number]", number),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2031"),
                ("card[cvc]", "123"),
                ("key", PUBLISHABLE_KEY),
            ])
            .send()
            .await
            .expect("create token");
        let body: Value = response.json().await.expect("token json");
        body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {body}"))
            .to_owned()
    }

    /// A PaymentMethod as Stripe.js `createPaymentMethod` makes it.
    pub async fn payment_method(&self, number: &str) -> String {
        let body = self
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", number),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2031"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no payment method: {body}"))
            .to_owned()
    }

    /// A call with the secret key, as the Stripe dashboard or another system would make it.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.api_base()))
            .bearer_auth(SECRET_KEY)
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        response.json().await.expect("localstripe json")
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.api_base()))
            .bearer_auth(SECRET_KEY)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        response.json().await.expect("localstripe json")
    }
}
