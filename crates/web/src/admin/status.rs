//! Live system status: every context's readiness and key figures (requests/s, 5xx share, p95
//! latency) from its `/metrics`, plus today's orders. The page refreshes itself from
//! `/admin/status.json`.
//!
//! Rates need two scrapes: the previous one of each context is kept in this module (the web state
//! belongs to every page). Figures are split by the `service` label every HTTP request is recorded
//! with, so they are per context even when one process serves them all (embedded mode); health
//! checks and the process itself are then shared, which the page says.

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use contracts::api::ordering::OrderSummary;
use http::StatusCode;
use minijinja::context;
use platform::health::{CheckStatus, ReadyReport};
use platform::pagination::Page;
use serde::Serialize;

use crate::api::CONTEXTS;
use crate::render::{page, value_of};
use crate::{CALLER, PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/status", get(status_page))
        .route("/admin/status.json", get(status_json))
}

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
const REQUESTS: &str = "http_requests_total";
const DURATION_BUCKET: &str = "http_request_duration_seconds_bucket";
/// Scrapes kept as bases of the rates are at least this far apart: one closer to the last kept
/// is not kept (two browser tabs polling at once would otherwise fill [`PREVIOUS`] with scrapes a
/// few milliseconds apart).
const MIN_RATE_WINDOW: Duration = Duration::from_secs(1);

async fn status_page(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_staff()?;
    let snapshot = snapshot(&web, &session).await;
    page(
        &session,
        "admin/status.html",
        context! {
            status => value_of(&snapshot),
            console_on => platform::console::installed().is_some(),
        },
    )
}

async fn status_json(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_staff()?;
    let snapshot = snapshot(&web, &session).await;
    let mut response = Json(snapshot).into_response();
    response
        .headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// What the status page shows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Snapshot {
    pub contexts: Vec<ContextStatus>,
    /// Orders placed since midnight UTC; absent when the viewer's role may not list orders.
    pub orders_today: Option<u64>,
    /// More orders than were counted (the count stopped after a few pages).
    pub orders_today_more: bool,
    /// One process serves several contexts (embedded mode): health is process-wide.
    pub shared_process: bool,
    /// Fault-injection flags some context reports on (`faults_active`), so nobody mistakes an
    /// injected failure for a real one.
    pub faults_active: Vec<String>,
    pub generated_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ContextStatus {
    pub context: &'static str,
    /// `ready`, `unavailable` (a required check is down) or `unreachable` (no answer).
    pub state: &'static str,
    pub checks: Vec<CheckView>,
    /// Requests per second since the previous scrape (absent on the first one).
    pub requests_per_second: Option<f64>,
    /// Share of 5xx answers, 0 to 1, over `window`.
    pub error_rate: Option<f64>,
    /// 95th percentile latency in milliseconds over `window` (bucket-interpolated).
    pub p95_ms: Option<f64>,
    /// `"last 3 s"` or `"since start"`: the span the error rate and p95 cover.
    pub window: String,
    pub requests_total: u64,
    pub error: Option<String>,
    /// The fault flags this context's process has on.
    pub faults_active: Vec<String>,
    /// The figures as shown (the page's script puts these in place as they are).
    pub display: Display,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Display {
    pub requests_per_second: String,
    pub error_rate: String,
    pub p95: String,
}

impl Display {
    fn of(status: &ContextStatus) -> Self {
        const NONE: &str = "—";
        Self {
            requests_per_second: status
                .requests_per_second
                .map_or_else(|| NONE.to_owned(), |r| format!("{r:.1}")),
            error_rate: status
                .error_rate
                .map_or_else(|| NONE.to_owned(), |r| format!("{:.1} %", r * 100.0)),
            p95: status.p95_ms.map_or_else(|| NONE.to_owned(), format_millis),
        }
    }
}

/// Milliseconds, with a decimal below 10 ms.
fn format_millis(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CheckView {
    pub name: String,
    pub status: CheckStatus,
    pub error: Option<String>,
}

// ---- Prometheus text format ----------------------------------------------------------------

/// One sample line of the Prometheus text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses the sample lines of a `/metrics` page (comments and malformed lines are skipped).
pub(crate) fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `key="value",…}` → the labels and what follows the closing brace.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        let mut chars = s[eq + 1..].char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false;
                }
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        labels.push((key, value));
        s = &s[end?..];
    }
}

/// One context's request counters at one moment (cumulative since its process started).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counters {
    pub requests: f64,
    pub errors: f64,
    /// Cumulative latency buckets: (upper bound in seconds, requests at or below it), ascending.
    pub buckets: Vec<(f64, f64)>,
}

impl Counters {
    /// The figures of requests labelled `service` (every route, method and status summed).
    pub(crate) fn of_service(samples: &[Sample], service: &str) -> Self {
        let mut counters = Counters::default();
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for s in samples.iter().filter(|s| s.label("service") == Some(service)) {
            if s.name == REQUESTS {
                counters.requests += s.value;
                if s.label("status") == Some("5xx") {
                    counters.errors += s.value;
                }
            } else if s.name == DURATION_BUCKET {
                let Some(le) = s.label("le").and_then(|le| match le {
                    "+Inf" => Some(f64::INFINITY),
                    le => le.parse::<f64>().ok(),
                }) else {
                    continue;
                };
                match buckets.iter_mut().find(|(bound, _)| *bound == le) {
                    Some((_, count)) => *count += s.value,
                    None => buckets.push((le, s.value)),
                }
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        counters.buckets = buckets;
        counters
    }

    /// What happened between `earlier` and now; `None` when the counters went backwards (the
    /// process restarted in between).
    pub(crate) fn since(&self, earlier: &Counters) -> Option<Counters> {
        if self.requests < earlier.requests {
            return None;
        }
        let buckets = self
            .buckets
            .iter()
            .map(|(le, count)| {
                let before = earlier.buckets.iter().find(|(b, _)| b == le).map_or(0.0, |(_, c)| *c);
                (*le, (count - before).max(0.0))
            })
            .collect();
        Some(Counters {
            requests: self.requests - earlier.requests,
            errors: (self.errors - earlier.errors).max(0.0),
            buckets,
        })
    }

    pub(crate) fn error_rate(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.errors / self.requests)
    }

    /// The `q` quantile of latency in seconds, interpolated linearly inside its bucket (as
    /// Prometheus' `histogram_quantile` does); past the last finite bound, that bound.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower_bound = 0.0;
        let mut lower_count = 0.0;
        for (bound, count) in &self.buckets {
            if *count >= rank {
                if bound.is_infinite() {
                    return Some(lower_bound);
                }
                let in_bucket = count - lower_count;
                let fraction = if in_bucket > 0.0 {
                    (rank - lower_count) / in_bucket
                } else {
                    1.0
                };
                return Some(lower_bound + (bound - lower_bound) * fraction);
            }
            lower_bound = *bound;
            lower_count = *count;
        }
        Some(lower_bound)
    }
}

/// The fault-injection flags a scrape reports on (`faults_active{flag} 1`), in name order.
pub(crate) fn active_faults(samples: &[Sample]) -> Vec<String> {
    let mut flags: Vec<String> = samples
        .iter()
        .filter(|s| s.name == "faults_active" && s.value > 0.0)
        .filter_map(|s| s.label("flag"))
        .map(str::to_owned)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// The services a scrape has request figures for (more than one: a shared process).
fn services_in(samples: &[Sample]) -> Vec<String> {
    let mut services: Vec<String> = samples
        .iter()
        .filter(|s| s.name == REQUESTS)
        .filter_map(|s| s.label("service"))
        .filter(|s| CONTEXTS.contains(s))
        .map(str::to_owned)
        .collect();
    services.sort();
    services.dedup();
    services
}

// ---- health --------------------------------------------------------------------------------

/// A context's state from its `/health/ready` answer (`None`: the body was no report). In a
/// shared process the report holds every context's checks (`catalog.database`): only this
/// context's own and the unprefixed shared ones (broker, cache) decide.
pub(crate) fn health_of(
    context: &str,
    http_status: StatusCode,
    report: Option<&ReadyReport>,
) -> (&'static str, Vec<CheckView>) {
    let prefix = format!("{context}.");
    let checks: Vec<CheckView> = report
        .into_iter()
        .flat_map(|report| &report.checks)
        .filter(|(name, _)| {
            name.starts_with(&prefix) || !CONTEXTS.iter().any(|other| name.starts_with(&format!("{other}.")))
        })
        .map(|(name, check)| CheckView {
            name: name.clone(),
            status: check.status,
            error: check.error.clone(),
        })
        .collect();
    let any_down = checks.iter().any(|c| c.status == CheckStatus::Down);
    let state = if any_down {
        "unavailable"
    } else if http_status.is_success() || !checks.is_empty() {
        // A shared process's 503 caused by another context's check does not make this one down.
        "ready"
    } else {
        "unavailable"
    };
    (state, checks)
}

// ---- scraping ------------------------------------------------------------------------------

struct Previous {
    at: Instant,
    counters: Counters,
}

/// Recent scrapes per context, oldest first, at least [`MIN_RATE_WINDOW`] apart. More than one:
/// a scrape made a moment ago for another viewer must not hide the one a rate can be taken from.
static PREVIOUS: LazyLock<Mutex<HashMap<&'static str, VecDeque<Previous>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const KEPT_SCRAPES: usize = 4;
/// A rate over less than this is mostly noise.
const SHORTEST_RATE_WINDOW: Duration = Duration::from_millis(250);

/// A `/health/ready` answer: its HTTP status and its report, or why the body was no report.
type HealthAnswer = (StatusCode, Result<ReadyReport, String>);

struct Scrape {
    context: &'static str,
    health: Result<HealthAnswer, String>,
    metrics: Result<Vec<Sample>, String>,
}

async fn scrape(web: WebState, context: &'static str) -> Scrape {
    let client = match web.ops_peers().client(CALLER, context) {
        Ok(client) => client,
        Err(e) => {
            return Scrape {
                context,
                health: Err(format!("{e:#}")),
                metrics: Err(format!("{e:#}")),
            };
        }
    };
    let health_call = client.get("/health/ready").timeout(SCRAPE_TIMEOUT).send();
    let mut metrics_call = client.get("/metrics").timeout(SCRAPE_TIMEOUT);
    if let Some(token) = &web.config().metrics_token {
        metrics_call = metrics_call.header("authorization", &format!("Bearer {token}"));
    }
    let metrics_call = metrics_call.send();
    let (health, metrics) = tokio::join!(health_call, metrics_call);
    Scrape {
        context,
        health: health
            .map(|reply| {
                let report = serde_json::from_slice::<ReadyReport>(&reply.body)
                    .map_err(|e| format!("/health/ready answered {} without a readable report: {e}", reply.status));
                (reply.status, report)
            })
            .map_err(|e| e.to_string()),
        metrics: metrics.map_err(|e| e.to_string()).and_then(|reply| {
            if reply.is_success() {
                Ok(parse_prometheus(&String::from_utf8_lossy(&reply.body)))
            } else {
                Err(format!("/metrics answered {}", reply.status))
            }
        }),
    }
}

fn context_status(scrape: Scrape, now: Instant) -> (ContextStatus, bool) {
    let context = scrape.context;
    let (state, checks, health_error) = match &scrape.health {
        Ok((status, report)) => {
            let (state, checks) = health_of(context, *status, report.as_ref().ok());
            (state, checks, report.as_ref().err().cloned())
        }
        Err(e) => ("unreachable", Vec::new(), Some(e.clone())),
    };
    let mut status = ContextStatus {
        context,
        state,
        checks,
        requests_per_second: None,
        error_rate: None,
        p95_ms: None,
        window: "since start".into(),
        requests_total: 0,
        error: health_error,
        faults_active: Vec::new(),
        display: Display::default(),
    };
    let samples = match scrape.metrics {
        Ok(samples) => samples,
        Err(e) => {
            status.error.get_or_insert(e);
            status.display = Display::of(&status);
            return (status, false);
        }
    };
    let shared = services_in(&samples).iter().any(|s| s != context);
    status.faults_active = active_faults(&samples);
    let now_counters = Counters::of_service(&samples, context);
    status.requests_total = now_counters.requests as u64;
    let mut previous = PREVIOUS.lock().unwrap_or_else(|p| p.into_inner());
    let earlier = previous.entry(context).or_default();
    let interval = earlier
        .iter()
        .rev()
        .find(|prev| now.saturating_duration_since(prev.at) >= SHORTEST_RATE_WINDOW)
        .and_then(|prev| {
            let elapsed = now.saturating_duration_since(prev.at);
            now_counters.since(&prev.counters).map(|delta| (elapsed, delta))
        });
    let mut figures = &now_counters;
    if let Some((elapsed, delta)) = &interval {
        status.requests_per_second = Some(delta.requests / elapsed.as_secs_f64());
        if delta.requests > 0.0 {
            status.window = format!("last {:.0} s", elapsed.as_secs_f64());
            figures = delta;
        }
    }
    status.error_rate = figures.error_rate();
    status.p95_ms = figures.quantile(0.95).map(|s| s * 1000.0);
    status.display = Display::of(&status);
    let too_soon = earlier
        .back()
        .is_some_and(|prev| now.saturating_duration_since(prev.at) < MIN_RATE_WINDOW);
    if !too_soon {
        earlier.push_back(Previous {
            at: now,
            counters: now_counters,
        });
        if earlier.len() > KEPT_SCRAPES {
            earlier.pop_front();
        }
    }
    (status, shared)
}

/// Pages of orders counted at most, so a busy shop's status page stays quick.
const ORDER_PAGES: usize = 10;

/// Orders placed since midnight UTC, by paging the admin order list (`None` when the viewer's
/// role may not list orders or ordering does not answer).
async fn orders_today(web: &WebState, session: &Session) -> (Option<u64>, bool) {
    let Ok(since) = super::orders::day_start(
        &time::OffsetDateTime::now_utc()
            .date()
            .format(time::macros::format_description!("[year]-[month]-[day]"))
            .unwrap_or_default(),
        0,
    ) else {
        return (None, false);
    };
    let api = web.api(session);
    let mut count = 0u64;
    let mut cursor = String::new();
    for _ in 0..ORDER_PAGES {
        let path = format!(
            "/api/v1/orders/admin/orders{}",
            super::query_string(&[("since", &since), ("limit", "200"), ("cursor", &cursor)])
        );
        let page = match api.get("ordering", &path).await {
            Ok(reply) if reply.is_success() => match reply.json::<Page<OrderSummary>>() {
                Ok(page) => page,
                Err(_) => return (None, false),
            },
            _ => return (None, false),
        };
        count += page.items.len() as u64;
        match page.next {
            Some(next) => cursor = next,
            None => return (Some(count), false),
        }
    }
    (Some(count), true)
}

/// Scrapes every context at once and counts today's orders.
pub(crate) async fn snapshot(web: &WebState, session: &Session) -> Snapshot {
    let mut scrapes = tokio::task::JoinSet::new();
    for context in CONTEXTS {
        scrapes.spawn(scrape(web.clone(), context));
    }
    let (orders_today, orders_today_more) = orders_today(web, session).await;
    let mut results = Vec::new();
    while let Some(joined) = scrapes.join_next().await {
        if let Ok(scrape) = joined {
            results.push(scrape);
        }
    }
    let now = Instant::now();
    let mut shared_process = false;
    let mut contexts: Vec<ContextStatus> = results
        .into_iter()
        .map(|scrape| {
            let (status, shared) = context_status(scrape, now);
            shared_process |= shared;
            status
        })
        .collect();
    contexts.sort_by_key(|c| CONTEXTS.iter().position(|name| *name == c.context));
    let mut faults_active: Vec<String> = contexts.iter().flat_map(|c| c.faults_active.clone()).collect();
    faults_active.sort();
    faults_active.dedup();
    Snapshot {
        faults_active,
        contexts,
        orders_today,
        orders_today_more,
        shared_process,
        generated_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn active_faults_are_the_flags_reported_on() {
        let samples = parse_prometheus(
            "faults_active{flag=\"cache_outage\"} 0\nfaults_active{flag=\"smtp_failure\"} 1\n\
             faults_active{flag=\"payment_failure_percent\"} 1\nhttp_requests_in_flight 1\n",
        );
        assert_eq!(active_faults(&samples), ["payment_failure_percent", "smtp_failure"]);
        assert!(active_faults(&parse_prometheus("http_requests_in_flight 1\n")).is_empty());
    }

    const SAMPLE: &str = r#"# HELP http_requests_total HTTP requests handled.
# TYPE http_requests_total counter
http_requests_total{service="catalog",method="GET",route="/api/v1/catalog/products",status="2xx"} 90
http_requests_total{service="catalog",method="POST",route="/api/v1/catalog/products",status="5xx"} 10
http_requests_total{service="platform",method="GET",route="/health/ready",status="2xx"} 7
http_requests_total{service="ordering",method="GET",route="/api/v1/orders",status="2xx"} 3
http_requests_in_flight 1
http_request_duration_seconds_bucket{service="catalog",method="GET",route="/x",status="2xx",le="0.01"} 50
http_request_duration_seconds_bucket{service="catalog",method="GET",route="/x",status="2xx",le="0.1"} 90
http_request_duration_seconds_bucket{service="catalog",method="GET",route="/x",status="2xx",le="+Inf"} 90
http_request_duration_seconds_bucket{service="catalog",method="POST",route="/x",status="5xx",le="0.01"} 0
http_request_duration_seconds_bucket{service="catalog",method="POST",route="/x",status="5xx",le="0.1"} 0
http_request_duration_seconds_bucket{service="catalog",method="POST",route="/x",status="5xx",le="+Inf"} 10
weird{a="quote \" and \\ back",b="x"} 1.5e3 1700000000
not a sample line
"#;

    #[test]
    fn a_scrape_for_another_viewer_a_moment_ago_does_not_hide_the_rate() {
        let scrape = |requests: u32| Scrape {
            context: "rate-test",
            health: Err("not asked".into()),
            metrics: Ok(parse_prometheus(&format!(
                "http_requests_total{{service=\"rate-test\",method=\"GET\",route=\"/x\",status=\"2xx\"}} {requests}\n"
            ))),
        };
        let start = Instant::now();
        let first = context_status(scrape(100), start).0;
        assert_eq!(first.requests_per_second, None, "no earlier scrape");
        // Another viewer's page scrapes 1.0 s later, this one 0.1 s after that: the rate is taken
        // over the 1.1 s since this viewer's first scrape, not over the other's 0.1 s.
        let other = context_status(scrape(150), start + Duration::from_millis(1000)).0;
        assert_eq!(other.requests_per_second, Some(50.0));
        let second = context_status(scrape(155), start + Duration::from_millis(1100)).0;
        let rate = second.requests_per_second.expect("a rate on the second scrape");
        assert!((rate - 55.0 / 1.1).abs() < 1e-9, "{rate}");
        assert_eq!(second.window, "last 1 s");
    }

    #[test]
    fn the_text_format_is_parsed() {
        let samples = parse_prometheus(SAMPLE);
        assert_eq!(samples.len(), 12, "{samples:#?}");
        let weird = samples.iter().find(|s| s.name == "weird").expect("weird");
        assert_eq!(weird.label("a"), Some(r#"quote " and \ back"#));
        assert_eq!(weird.label("b"), Some("x"));
        assert_eq!(weird.value, 1500.0);
        let gauge = samples
            .iter()
            .find(|s| s.name == "http_requests_in_flight")
            .expect("gauge");
        assert!(gauge.labels.is_empty());
        assert_eq!(services_in(&samples), ["catalog", "ordering"]);
    }

    #[test]
    fn figures_are_per_service() {
        let samples = parse_prometheus(SAMPLE);
        let catalog = Counters::of_service(&samples, "catalog");
        assert_eq!(catalog.requests, 100.0);
        assert_eq!(catalog.errors, 10.0);
        assert_eq!(catalog.error_rate(), Some(0.1));
        assert_eq!(catalog.buckets, vec![(0.01, 50.0), (0.1, 90.0), (f64::INFINITY, 100.0)]);
        // Rank 95 of 100 is past the last finite bound: reported as that bound.
        assert_eq!(catalog.quantile(0.95), Some(0.1));
        // Rank 50 is the top of the first bucket; rank 70 half-way through the second.
        assert_eq!(catalog.quantile(0.5), Some(0.01));
        let p70 = catalog.quantile(0.7).expect("p70");
        assert!((p70 - 0.055).abs() < 1e-9, "{p70}");
        assert_eq!(Counters::of_service(&samples, "payments").quantile(0.95), None);
        assert_eq!(Counters::of_service(&samples, "payments").error_rate(), None);
    }

    #[test]
    fn rates_come_from_the_difference_of_two_scrapes() {
        let before = Counters {
            requests: 100.0,
            errors: 10.0,
            buckets: vec![(0.01, 50.0), (f64::INFINITY, 100.0)],
        };
        let after = Counters {
            requests: 120.0,
            errors: 10.0,
            buckets: vec![(0.01, 70.0), (f64::INFINITY, 120.0)],
        };
        let delta = after.since(&before).expect("delta");
        assert_eq!(delta.requests, 20.0);
        assert_eq!(delta.error_rate(), Some(0.0));
        assert_eq!(delta.quantile(0.95), Some(0.0095));
        assert_eq!(before.since(&after), None, "a restart resets the counters");
    }

    #[test]
    fn figures_are_shown_rounded() {
        assert_eq!(format_millis(2.345), "2.3 ms");
        assert_eq!(format_millis(117.6), "118 ms");
    }

    fn report(json: serde_json::Value) -> ReadyReport {
        serde_json::from_value(json).expect("a /health/ready body")
    }

    #[test]
    fn a_shared_health_report_is_read_per_context() {
        let report = report(json!({ "status": "unavailable", "checks": {
            "catalog.database": { "status": "up", "latency_ms": 1.5 },
            "ordering.database": { "status": "down", "latency_ms": 2000.0, "error": "disk full" },
            "broker": { "status": "degraded", "latency_ms": 0.4 },
        }}));
        let (state, checks) = health_of("catalog", StatusCode::SERVICE_UNAVAILABLE, Some(&report));
        assert_eq!(state, "ready");
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["broker", "catalog.database"]);
        let (state, checks) = health_of("ordering", StatusCode::SERVICE_UNAVAILABLE, Some(&report));
        assert_eq!(state, "unavailable");
        assert_eq!(checks[1].error.as_deref(), Some("disk full"));
        assert_eq!(
            health_of("cart", StatusCode::SERVICE_UNAVAILABLE, None).0,
            "unavailable"
        );
        let empty = self::report(json!({ "status": "ready", "checks": {} }));
        assert_eq!(health_of("cart", StatusCode::OK, Some(&empty)).0, "ready");
    }

    /// The page shows check states in the words `/health/ready` uses.
    #[test]
    fn check_states_are_shown_as_the_report_words_them() {
        let report = report(json!({ "status": "ready", "checks": {
            "cache": { "status": "degraded", "latency_ms": 0.4, "error": "refused" },
        }}));
        let (_, checks) = health_of("cart", StatusCode::OK, Some(&report));
        let shown = serde_json::to_value(&checks).expect("serialise");
        assert_eq!(
            shown,
            json!([{ "name": "cache", "status": "degraded", "error": "refused" }])
        );
    }
}
