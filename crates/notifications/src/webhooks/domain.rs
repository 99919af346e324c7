//! Outbound webhooks' rules, without I/O: which targets are allowed (SSRF), which events an
//! endpoint wants, secrets and Standard Webhooks signatures, the retry schedule, when a failing
//! endpoint is switched off.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;

/// The longest endpoint URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// How many event-type patterns one endpoint may list.
pub const MAX_FILTERS: usize = 50;
/// The longest pattern.
pub const MAX_FILTER_CHARS: usize = 100;
/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// Endpoints per shop.
pub const MAX_ENDPOINTS: usize = 100;
/// Secret prefix, as the Standard Webhooks libraries expect it.
pub const SECRET_PREFIX: &str = "whsec_";

/// Which targets an endpoint may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Plain `http://` allowed (embedded mode); production requires `https://`.
    pub allow_http: bool,
    /// Loopback, private, link-local and other internal addresses allowed
    /// (`EMPORIUM_WEBHOOK_ALLOW_PRIVATE`; off by default: a webhook must not reach into the
    /// network Emporium runs in).
    pub allow_private: bool,
}

/// Addresses a webhook must not reach unless explicitly allowed: the machine itself, private
/// networks, link-local (cloud metadata at 169.254.169.254), carrier-grade NAT, multicast and the
/// reserved ranges.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
                || (v6.segments()[0] == 0x64 && v6.segments()[1] == 0xff9b) // NAT64 64:ff9b::/96
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// A checked endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    url: String,
    host: String,
}

impl EndpointUrl {
    /// Checks `raw` against the policy: http(s) only (https only in production), a host, no
    /// credentials, no fragment, no internal address or name (unless allowed). Names are checked
    /// again when each delivery resolves them.
    pub fn parse(raw: &str, policy: TargetPolicy) -> Result<Self, String> {
        let url = raw.trim();
        if url.is_empty() {
            return Err("is required".into());
        }
        if url.chars().count() > MAX_URL_CHARS {
            return Err(format!("must be at most {MAX_URL_CHARS} characters"));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "must be an absolute URL such as https://erp.example.com/hooks".to_owned())?;
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {}
            "http" if policy.allow_http => {}
            "http" => return Err("must use https:// (plain http is refused in production)".into()),
            _ => return Err("must be an http(s) URL".into()),
        }
        if url.contains('#') {
            return Err("must not have a fragment".into());
        }
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err("must not carry credentials (user:password@)".into());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(rest) => {
                let (h, after) = rest
                    .split_once(']')
                    .ok_or_else(|| "has an invalid IPv6 host".to_owned())?;
                match after {
                    "" => (h, None),
                    _ => (
                        h,
                        Some(
                            after
                                .strip_prefix(':')
                                .ok_or_else(|| "has an invalid host".to_owned())?,
                        ),
                    ),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        let host = host.to_ascii_lowercase();
        if host.is_empty() {
            return Err("must name a host".into());
        }
        if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
            return Err("has an invalid port".into());
        }
        if !policy.allow_private {
            if let Ok(ip) = host.parse::<IpAddr>() {
                if is_internal(ip) {
                    return Err(format!(
                        "points at an internal address ({ip}); set EMPORIUM_WEBHOOK_ALLOW_PRIVATE=true to allow it"
                    ));
                }
            } else if host == "localhost"
                || host.ends_with(".localhost")
                || host.ends_with(".internal")
                || host.ends_with(".local")
            {
                return Err(format!(
                    "points at an internal name ({host}); set EMPORIUM_WEBHOOK_ALLOW_PRIVATE=true to allow it"
                ));
            } else if !host.contains('.') {
                return Err("must name a public host (a single-label name resolves inside the network)".into());
            }
            // Numeric forms some resolvers read as IPv4 (`2130706433`, `0x7f.1`, `127.1`): a real
            // name ends in an alphabetic top-level label.
            let last = host.rsplit('.').next().unwrap_or_default();
            if host.parse::<IpAddr>().is_err() && (last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x")) {
                return Err("must not be a numeric address in another notation".into());
            }
        }
        if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b)) {
            return Err("has an invalid host".into());
        }
        Ok(Self {
            url: url.to_owned(),
            host,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

/// The event types an endpoint wants: exact types (`ordering.order.confirmed`), one-word
/// wildcards (`ordering.order.*`), a trailing `#` for any rest (`payments.#`), or `#` for all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter(Vec<String>);

impl EventFilter {
    pub fn parse(patterns: &[String]) -> Result<Self, String> {
        if patterns.is_empty() {
            return Err("must list at least one event type (`#` for all)".into());
        }
        if patterns.len() > MAX_FILTERS {
            return Err(format!("must list at most {MAX_FILTERS} event types"));
        }
        let mut out: Vec<String> = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = p.trim();
            if p.len() > MAX_FILTER_CHARS {
                return Err(format!("each event type must be at most {MAX_FILTER_CHARS} characters"));
            }
            let words: Vec<&str> = p.split('.').collect();
            let valid_word = |w: &str| {
                w == "*"
                    || (!w.is_empty()
                        && w.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            };
            let (last, init) = words.split_last().unwrap_or((&"", &[]));
            let ok = p == "#"
                || (init.iter().all(|w| valid_word(w)) && (valid_word(last) || (*last == "#" && !init.is_empty())));
            if !ok {
                return Err(format!(
                    "{p:?} is not an event type pattern (lowercase words separated by dots, `*` for one word, a final `#` for the rest)"
                ));
            }
            if !out.iter().any(|q| q == p) {
                out.push(p.to_owned());
            }
        }
        Ok(Self(out))
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// Routed as the bus routes (AMQP topic rules).
    pub fn matches(&self, event_type: &str) -> bool {
        self.0.iter().any(|p| platform::events::topic::matches(p, event_type))
    }
}

/// A signing secret: `whsec_` and 24 random bytes in base64 (the Standard Webhooks form).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

/// The key a secret signs with (the bytes after `whsec_`).
fn key_of(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    B64.decode(encoded).unwrap_or_else(|_| encoded.as_bytes().to_vec())
}

/// `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, the Standard Webhooks signature.
pub fn signature(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key_of(secret)).expect("HMAC takes keys of any length");
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per live secret (the new one first), space
/// separated, so a receiver that still has the old secret verifies during a rotation.
pub fn signature_header(secrets: &[&str], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| signature(s, message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `webhook-id` of a message: stable across retries and replays, so receivers deduplicate.
pub fn message_id(id: Uuid) -> String {
    format!("msg_{}", id.simple())
}

/// When each attempt happens, counted from the previous one: attempt 1 at once, then each entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    /// Standard Webhooks' suggestion: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (eight
    /// attempts over about 27.6 hours).
    pub fn standard() -> Self {
        Self(
            [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }

    /// `EMPORIUM_WEBHOOK_RETRY_SCHEDULE`: the waits between attempts in seconds, comma-separated.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let waits: Result<Vec<Duration>, String> = raw
            .split(',')
            .map(|w| {
                let w = w.trim();
                w.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && (0.0..=7.0 * 86_400.0).contains(s))
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{w:?} is not a wait in seconds (0 to 604800)"))
            })
            .collect();
        let waits = waits?;
        if waits.len() > 20 {
            return Err("must list at most 20 waits".into());
        }
        Ok(Self(waits))
    }

    /// How many attempts a message gets.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(20) + 1
    }

    /// The wait before attempt `made + 1` after `made` failed attempts; `None`: none left.
    pub fn next_wait(&self, made: u32) -> Option<Duration> {
        self.0.get(usize::try_from(made).ok()?.checked_sub(1)?).copied()
    }

    pub fn total(&self) -> Duration {
        self.0.iter().sum()
    }
}

/// When an endpoint whose deliveries keep failing is switched off: at least `failures` failed
/// attempts in a row, the first of them at least `after` ago (so a short outage of a busy
/// receiver does not disable it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisableRule {
    pub failures: u32,
    pub after: Duration,
}

impl DisableRule {
    /// `streak` failures in a row, the first `streak_age` ago.
    pub fn should_disable(&self, streak: u32, streak_age: Duration) -> bool {
        streak >= self.failures && streak_age >= self.after
    }
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// Any other answer (redirects are not followed), a timeout, or no connection.
    Failed { status: Option<u16>, error: String },
}

/// Reads an HTTP status as the attempt's outcome.
pub fn outcome_of_status(status: u16) -> AttemptOutcome {
    match status {
        200..=299 => AttemptOutcome::Delivered { status },
        300..=399 => AttemptOutcome::Failed {
            status: Some(status),
            error: "redirects are not followed: register the final URL".into(),
        },
        _ => AttemptOutcome::Failed {
            status: Some(status),
            error: format!("the receiver answered HTTP {status}"),
        },
    }
}

/// A message's state in the delivery log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// Waiting for its first or next attempt.
    Pending,
    Delivered,
    /// Every attempt failed, or the endpoint was disabled; replay sends it again.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTION: TargetPolicy = TargetPolicy {
        allow_http: false,
        allow_private: false,
    };

    #[test]
    fn production_targets_are_public_https_only() {
        for good in [
            "https://erp.example.com/hooks",
            "https://erp.example.com:8443/hooks?x=1",
            "https://93.184.216.34/hooks",
            "HTTPS://Erp.Example.com/",
        ] {
            assert!(EndpointUrl::parse(good, PRODUCTION).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ftp://erp.example.com/",
            "erp.example.com/hooks",
            "http://erp.example.com/hooks",
            "https://user:pw@erp.example.com/",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost/",
            "https://api.localhost/",
            "https://metadata.google.internal/",
            "https://intranet/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://erp.example.com/#frag",
            "https://erp.example.com:0/",
            "https://erp.example.com:99999/",
            "https://erp example.com/",
            "javascript:alert(1)",
        ] {
            assert!(EndpointUrl::parse(bad, PRODUCTION).is_err(), "{bad:?} was accepted");
        }
        let long = format!("https://erp.example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(EndpointUrl::parse(&long, PRODUCTION).is_err());
        let local = TargetPolicy {
            allow_http: true,
            allow_private: true,
        };
        let url = EndpointUrl::parse("http://127.0.0.1:9000/in", local).expect("allowed when asked");
        assert_eq!(url.host(), "127.0.0.1");
        assert!(EndpointUrl::parse("ftp://127.0.0.1/", local).is_err());
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fc00::1",
            "::ffff:10.0.0.1",
            "100.100.100.100",
            "255.255.255.255",
            "224.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_internal(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_internal(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn filters_match_like_topics_and_refuse_oversized_or_odd_lists() {
        let f = EventFilter::parse(&[
            "ordering.order.confirmed".into(),
            "payments.*.captured".into(),
            "inventory.#".into(),
        ])
        .expect("filter");
        assert!(f.matches("ordering.order.confirmed"));
        assert!(!f.matches("ordering.order.shipped"));
        assert!(f.matches("payments.payment.captured"));
        assert!(!f.matches("payments.payment.captured.late"));
        assert!(f.matches("inventory.stock.low"));
        assert!(
            EventFilter::parse(&["#".into()])
                .expect("all")
                .matches("anything.at.all")
        );
        assert!(EventFilter::parse(&[]).is_err());
        assert!(EventFilter::parse(&vec!["a.b".to_owned(); MAX_FILTERS + 1]).is_err());
        assert!(EventFilter::parse(&["a".repeat(MAX_FILTER_CHARS + 1)]).is_err());
        for odd in ["", "Order.Confirmed", "a..b", "a.#.b", "a b", "a.b!"] {
            assert!(EventFilter::parse(&[odd.to_owned()]).is_err(), "{odd:?}");
        }
        let deduped = EventFilter::parse(&["a.b".into(), "a.b".into()]).expect("dup");
        assert_eq!(deduped.patterns(), ["a.b"]);
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let rotated = signature_header(&[secret, "whsec_b2xk"], "msg_1", 5, body);
        let parts: Vec<&str> = rotated.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        let fresh = new_secret();
        assert!(fresh.starts_with(SECRET_PREFIX));
        assert_eq!(B64.decode(&fresh[SECRET_PREFIX.len()..]).expect("base64").len(), 24);
        assert_ne!(fresh, new_secret());
    }

    #[test]
    fn the_schedule_spreads_attempts_over_about_a_day() {
        let s = RetrySchedule::standard();
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.next_wait(1), Some(Duration::from_secs(5)));
        assert_eq!(s.next_wait(7), Some(Duration::from_secs(36_000)));
        assert_eq!(s.next_wait(8), None);
        assert_eq!(s.next_wait(0), None);
        let hours = s.total().as_secs_f64() / 3600.0;
        assert!((24.0..30.0).contains(&hours), "{hours} h");
        assert_eq!(RetrySchedule::parse("0.2, 1").expect("parse").attempts(), 3);
        for bad in ["", "x", "-1", "1,,2", "inf", "700000"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn endpoints_are_disabled_after_a_long_enough_run_of_failures() {
        let rule = DisableRule {
            failures: 10,
            after: Duration::from_secs(3600),
        };
        assert!(!rule.should_disable(9, Duration::from_secs(7200)));
        assert!(
            !rule.should_disable(50, Duration::from_secs(60)),
            "a burst during a short outage"
        );
        assert!(rule.should_disable(10, Duration::from_secs(3600)));
        assert_eq!(outcome_of_status(204), AttemptOutcome::Delivered { status: 204 });
        assert!(
            matches!(outcome_of_status(302), AttemptOutcome::Failed { status: Some(302), error } if error.contains("redirect"))
        );
        assert!(matches!(
            outcome_of_status(500),
            AttemptOutcome::Failed { status: Some(500), .. }
        ));
    }
}
