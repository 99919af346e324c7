//! The gateway's HTTP/1.1 client to the context processes: hyper's pooled client, used directly.
//!
//! reqwest did the same job before, but a proxied request paid for what a proxy never needs
//! (URL re-parsing, a timer per read, cookie and redirect plumbing): the gateway's CPU per
//! request is its throughput cost when it shares cores with the contexts. Upstreams are plain
//! HTTP on the cluster network (TLS between pods is a service mesh's job).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::{Instant, Sleep};

/// An upstream's base URL, split once at start-up into what every request reuses.
#[derive(Debug, Clone)]
pub struct Base {
    authority: Authority,
    /// The `Host` header it is sent (hyper's client would format it again per request).
    host: HeaderValue,
}

impl Base {
    /// `http://host:port` (no path, no query). `None` for anything else.
    pub fn parse(url: &str) -> Option<Self> {
        let uri: Uri = url.parse().ok()?;
        let plain_http = uri.scheme() == Some(&Scheme::HTTP);
        let bare = uri.path_and_query().is_none_or(|pq| pq.as_str() == "/");
        match uri.into_parts().authority {
            Some(authority) if plain_http && bare => {
                let host = HeaderValue::from_str(authority.as_str()).ok()?;
                Some(Self { authority, host })
            }
            _ => None,
        }
    }

    /// The `Host` header for requests to this upstream: its authority as written.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// The upstream URI for a request's path and query, exactly as the client sent them.
    pub fn join(&self, path_and_query: Option<&PathAndQuery>) -> Option<Uri> {
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(
                path_and_query
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/")),
            )
            .build()
            .ok()
    }
}

/// Why a call produced no answer.
#[derive(Debug)]
pub enum CallError {
    /// No answer (headers) within the deadline.
    Timeout,
    /// The connection could not be made: the request never reached the upstream.
    Connect(String),
    /// The connection broke, or the answer was not HTTP.
    Other(String),
}

/// A pooled HTTP/1.1 client (keep-alive, `TCP_NODELAY`). Cheap to clone. Callers set `Host`
/// (see [`Base::host`]).
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpConnector, Body>,
}

impl UpstreamClient {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .set_host(false)
            .build(connector);
        Self { client }
    }

    /// Sends one request and waits at most `deadline` for the answer's head.
    pub async fn call(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Body,
        deadline: Duration,
    ) -> Result<Response<Incoming>, CallError> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        match tokio::time::timeout(deadline, self.client.request(request)).await {
            Err(_) => Err(CallError::Timeout),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() => Err(CallError::Connect(error_chain(&e))),
            Ok(Err(e)) => Err(CallError::Other(error_chain(&e))),
        }
    }
}

/// An error and its causes, on one line (hyper's top-level messages say little on their own).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// An answer's body that fails once the upstream pauses longer than `idle` between frames, so a
/// stalled upstream cannot hold a client's connection open forever.
pub struct IdleTimeoutBody {
    inner: Incoming,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl IdleTimeoutBody {
    pub fn new(inner: Incoming, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the upstream paused for more than {0} ms while sending its answer")]
    Stalled(u128),
    #[error("the upstream's answer broke off: {0}")]
    Broken(String),
}

impl HttpBody for IdleTimeoutBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.timer.as_mut().reset(Instant::now() + this.idle);
            return Poll::Ready(frame.map(|f| f.map_err(|e| StreamError::Broken(error_chain(&e)))));
        }
        ready!(this.timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(StreamError::Stalled(this.idle.as_millis()))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_plain_http_origins() {
        let base = Base::parse("http://catalog:8082").expect("base");
        let pq: PathAndQuery = "/api/v1/inventory/SKU%2F1?sku=a&sku=b%20c&q=caf%C3%A9+au+lait"
            .parse()
            .expect("path");
        assert_eq!(
            base.join(Some(&pq)).expect("uri").to_string(),
            "http://catalog:8082/api/v1/inventory/SKU%2F1?sku=a&sku=b%20c&q=caf%C3%A9+au+lait",
            "path and query reach the upstream as they came"
        );
        assert_eq!(base.join(None).expect("uri").to_string(), "http://catalog:8082/");
        assert_eq!(base.host(), "catalog:8082");
        assert_eq!(Base::parse("http://127.0.0.1").expect("base").host(), "127.0.0.1");
        assert!(Base::parse("http://127.0.0.1:18082/").is_some());
        for bad in [
            "https://catalog:8082",
            "catalog:8082",
            "http://catalog:8082/api",
            "http://c:1/?q",
            "ftp://c",
        ] {
            assert!(Base::parse(bad).is_none(), "{bad}");
        }
    }
}
