//! Which headers cross the proxy, and the ones it adds (RFC 9110 §7.6.1: connection-specific
//! headers belong to one hop and are never forwarded).

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};

static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Removes the hop-by-hop headers from `headers`, including any its `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests and answers carry none: one pass over the names they do carry costs a
    // tenth of looking each hop-by-hop name up (a hash and a probe per `remove`, per message).
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    // `HeaderName::from_bytes` lower-cases, as header names compare.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
}

/// Who the request is for, as the upstream should see it.
pub struct Origin<'a> {
    /// The address the gateway sees the client at (already resolved through trusted proxies).
    pub client: IpAddr,
    /// Whether the peer is a proxy we trust (its `X-Forwarded-*` headers are kept and extended).
    pub trust_forwarded_for: bool,
    pub request_id: &'a str,
    /// The gateway's own `traceparent`, when it is tracing (the upstream's span becomes a child
    /// of the gateway's); otherwise the client's is passed on as it came.
    pub traceparent: Option<String>,
    /// The upstream's authority, as its `Host` header.
    pub host: HeaderValue,
}

/// The headers of the request to the upstream, made from the client's in place: its
/// end-to-end headers (with the upstream's `Host`; the client's goes on as `X-Forwarded-Host`)
/// plus forwarding information. Behind an untrusted peer any `X-Forwarded-*` the client sent is
/// replaced, so a client cannot pose as another address to the contexts, which trust the
/// gateway's word.
pub fn upstream_request_headers(mut headers: HeaderMap, origin: &Origin<'_>) -> HeaderMap {
    // In place: a copy of the client's map to build from cost as much as the rest together.
    let client_host = headers.insert(header::HOST, origin.host.clone());
    strip_hop_by_hop(&mut headers);
    let client = address_text(origin.client);
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(chain) if origin.trust_forwarded_for && !chain.trim().is_empty() => format!("{}, {client}", chain.trim()),
        _ => client,
    };
    set(&mut headers, X_FORWARDED_FOR, &forwarded_for);
    // A trusted proxy's first value stays (alone); anything else is replaced.
    let trusted = |headers: &HeaderMap, name: &HeaderName| {
        origin.trust_forwarded_for.then(|| headers.get(name).cloned()).flatten()
    };
    let proto = trusted(&headers, &X_FORWARDED_PROTO).unwrap_or_else(|| HeaderValue::from_static("http"));
    headers.insert(X_FORWARDED_PROTO, proto);
    match trusted(&headers, &X_FORWARDED_HOST).or(client_host) {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
    set(&mut headers, platform::http::X_REQUEST_ID, origin.request_id);
    if let Some(traceparent) = &origin.traceparent {
        set(&mut headers, TRACEPARENT, traceparent);
    }
    headers
}

/// An address as `X-Forwarded-For` writes it. IPv4 by hand: `Display` runs the formatter's
/// machinery, about 1% of a proxied read's instructions.
fn address_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Whether the request has a body to stream (a GET with neither a length nor chunked encoding
/// has none, and can be sent again as it is).
pub fn has_body(method: &Method, headers: &HeaderMap) -> bool {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) => n > 0,
        None => {
            headers.contains_key(header::TRANSFER_ENCODING)
                || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE)
        }
    }
}

/// Requests that may be sent again after a failure that might have reached the upstream: the
/// safe methods, when there is no body to send twice.
pub fn retry_safe(method: &Method, body: bool) -> bool {
    !body && matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(trust: bool) -> Origin<'static> {
        Origin {
            client: IpAddr::from([198, 51, 100, 7]),
            trust_forwarded_for: trust,
            request_id: "req-1",
            traceparent: None,
            host: HeaderValue::from_static("catalog:8082"),
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret-Hop"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.append(header::ACCEPT, HeaderValue::from_static("text/html"));
        h.append(header::ACCEPT, HeaderValue::from_static("application/json"));
        let mut out = h.clone();
        strip_hop_by_hop(&mut out);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[header::AUTHORIZATION], "Bearer t");
        assert_eq!(out.get_all(header::ACCEPT).iter().count(), 2);
        let mut answer = h.clone();
        answer.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        answer.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut answer);
        assert_eq!(
            answer, out,
            "the same headers go, and the ones Connection does not name"
        );

        let mut plain = HeaderMap::new();
        plain.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        plain.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        let before = plain.clone();
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain, before, "nothing hop-by-hop, nothing removed");
        plain.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain, before, "one hop-by-hop header without Connection goes too");
    }

    #[test]
    fn forwarding_headers_are_replaced_unless_the_peer_is_trusted() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("shop.example.com"));
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-request-id", HeaderValue::from_static("client-chosen"));
        h.insert("traceparent", HeaderValue::from_static("00-abc-def-01"));

        let out = upstream_request_headers(h.clone(), &origin(false));
        assert_eq!(
            out["x-forwarded-for"], "198.51.100.7",
            "a client cannot pose as 6.6.6.6"
        );
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-host"], "shop.example.com");
        assert_eq!(out["x-request-id"], "req-1");
        assert_eq!(
            out["traceparent"], "00-abc-def-01",
            "passed on when the gateway is not tracing"
        );
        assert_eq!(out[header::HOST], "catalog:8082", "the upstream's, not the client's");

        let out = upstream_request_headers(h.clone(), &origin(true));
        assert_eq!(out["x-forwarded-for"], "6.6.6.6, 198.51.100.7");
        assert_eq!(out["x-forwarded-proto"], "https");

        let traced = Origin {
            traceparent: Some("00-abc-123-01".into()),
            ..origin(false)
        };
        assert_eq!(
            upstream_request_headers(h.clone(), &traced)["traceparent"],
            "00-abc-123-01"
        );
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "1.20.3.45",
            "198.51.100.7",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            assert_eq!(address_text(ip), ip.to_string());
        }
    }

    #[test]
    fn bodies_and_retries() {
        let mut h = HeaderMap::new();
        assert!(!has_body(&Method::GET, &h));
        assert!(has_body(&Method::POST, &h), "a POST without a length may stream one");
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(!has_body(&Method::POST, &h));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert!(has_body(&Method::GET, &h));

        assert!(retry_safe(&Method::GET, false));
        assert!(retry_safe(&Method::HEAD, false));
        assert!(!retry_safe(&Method::GET, true));
        assert!(!retry_safe(&Method::POST, false));
        assert!(
            !retry_safe(&Method::PUT, false),
            "PUT is idempotent, but we do not resend writes"
        );
        assert!(!retry_safe(&Method::DELETE, false));
    }
}
