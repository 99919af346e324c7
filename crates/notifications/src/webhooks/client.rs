//! The HTTP client webhooks are delivered with: HTTPS through rustls (ring, Mozilla roots), no
//! redirects followed, a deadline per attempt, and a resolver that refuses internal addresses
//! at delivery time, so a name that resolves (or is later re-pointed, DNS rebinding) to
//! 127.0.0.1, a private network or the cloud metadata address is never connected to. Literal IP
//! targets do not go through a resolver: their URL is checked again before every attempt.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use super::domain::{AttemptOutcome, EndpointUrl, TargetPolicy, is_internal, outcome_of_status};

/// How much of a receiver's answer is read (and thrown away): enough to reuse the connection.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Resolves names like the system does, keeping only addresses the policy allows.
#[derive(Clone)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || !is_internal(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} resolves only to internal addresses", name.as_str()),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

type Https = hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>;

pub struct WebhookClient {
    http: Client<Https, Full<Bytes>>,
    policy: TargetPolicy,
    timeout: Duration,
}

/// One attempt's result and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub outcome: AttemptOutcome,
    pub latency: Duration,
}

impl WebhookClient {
    pub fn new(policy: TargetPolicy, timeout: Duration) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            allow_private: policy.allow_private,
        });
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(https);
        Ok(Self { http, policy, timeout })
    }

    /// POSTs `body` with `headers` to `url`. Never fails: every problem is a failed attempt
    /// with its reason.
    pub async fn post(&self, url: &str, headers: &[(&'static str, String)], body: Bytes) -> Sent {
        let started = Instant::now();
        let outcome = self.exchange(url, headers, body).await;
        Sent {
            outcome,
            latency: started.elapsed(),
        }
    }

    async fn exchange(&self, url: &str, headers: &[(&'static str, String)], body: Bytes) -> AttemptOutcome {
        let failed = |error: String| AttemptOutcome::Failed { status: None, error };
        // Checked again: the policy may have changed, and literal addresses skip the resolver.
        if let Err(why) = EndpointUrl::parse(url, self.policy) {
            return failed(format!("the URL is no longer allowed: it {why}"));
        }
        let mut request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("Emporium-Webhooks/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = match request.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return failed(format!("the request could not be built: {e}")),
        };
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                // The resolver's refusal is the useful part of the chain.
                let mut cause: &dyn std::error::Error = &e;
                let mut text = e.to_string();
                while let Some(source) = cause.source() {
                    text = source.to_string();
                    cause = source;
                }
                format!("no connection: {text}")
            })?;
            let status = response.status().as_u16();
            // Read (a bounded part of) the answer so the connection can be reused.
            let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await;
            Ok::<u16, String>(status)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => failed(format!("no answer within {} ms", self.timeout.as_millis())),
            Ok(Err(why)) => failed(why),
            Ok(Ok(status)) => outcome_of_status(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use tower::Service;

    use super::*;

    /// A name is checked where it is resolved: one that resolves to the machine itself (as a
    /// re-pointed public name would) is refused unless private targets are allowed.
    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused_at_connect_time() {
        let name = Name::from_str("localhost").expect("name");
        let refused = GuardedResolver { allow_private: false }
            .call(name.clone())
            .await
            .expect_err("localhost resolves to loopback");
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(refused.to_string().contains("internal addresses"), "{refused}");
        let allowed: Vec<SocketAddr> = GuardedResolver { allow_private: true }
            .call(name)
            .await
            .expect("allowed when asked")
            .collect();
        assert!(allowed.iter().all(|a| a.ip().is_loopback()), "{allowed:?}");
    }

    #[tokio::test]
    async fn a_literal_internal_address_is_refused_before_any_connection() {
        let client = WebhookClient::new(
            TargetPolicy {
                allow_http: true,
                allow_private: false,
            },
            Duration::from_secs(1),
        )
        .expect("client");
        let sent = client
            .post("http://127.0.0.1:9/hook", &[], Bytes::from_static(b"{}"))
            .await;
        assert!(
            matches!(&sent.outcome, AttemptOutcome::Failed { status: None, error } if error.contains("internal address")),
            "{sent:?}"
        );
    }
}
