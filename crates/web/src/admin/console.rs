//! The built-in console's pages: recent traces, one trace as a waterfall, recent log lines, and
//! the 15-minute history the status page charts.
//!
//! The process serving the pages reads its own buffers (`platform::console`); under `emporium
//! dev --topology multi` (the gateway serves the pages) it also asks each context process for
//! its spans and lines at `/internal/console/*` with the scrape token, and merges them, so one
//! trace through five processes is one waterfall.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, Once};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use minijinja::context;
use platform::console::{Console, LogFilter, LogRecord, LogsReply, SpanRecord, TraceReply, TraceSummary, TracesReply};
use platform::http::Path;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::query_string;
use super::status::{Counters, parse_prometheus};
use crate::api::CONTEXTS;
use crate::forms::FieldErrors;
use crate::render::{page_with_status, value_of};
use crate::{CALLER, PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/traces", get(traces_page))
        .route("/admin/traces/{trace_id}", get(trace_page))
        .route("/admin/logs", get(logs_page))
        .route("/admin/status/history.json", get(history_json))
}

const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
const TRACES_SHOWN: usize = 200;
const LOGS_SHOWN: usize = 500;

/// Where the console's records come from: this process, and the context processes when this one
/// is the gateway (in embedded mode this process is all of them).
struct Sources {
    local: Arc<Console>,
    remote: &'static [&'static str],
}

fn sources() -> Option<Sources> {
    let local = platform::console::installed()?;
    let remote: &'static [&'static str] = if local.service() == "embedded" { &[] } else { &CONTEXTS };
    Some(Sources { local, remote })
}

/// `GET path` of one context process's console, with the scrape token.
async fn fetch<T: DeserializeOwned>(web: &WebState, context: &'static str, path: &str) -> Result<T, String> {
    let client = web.ops_peers().client(CALLER, context).map_err(|e| format!("{e:#}"))?;
    let mut call = client.get(path).timeout(FETCH_TIMEOUT);
    if let Some(token) = &web.config().metrics_token {
        call = call.header("authorization", &format!("Bearer {token}"));
    }
    let reply = call.send().await.map_err(|e| e.to_string())?;
    if !reply.is_success() {
        return Err(format!("{path} answered {}", reply.status));
    }
    reply.json().map_err(|e| e.to_string())
}

/// Each remote context's answer; the failures as notes for the page ("catalog: ...").
async fn fetch_all<T: DeserializeOwned>(web: &WebState, remote: &[&'static str], path: &str) -> (Vec<T>, Vec<String>) {
    let answers = futures::future::join_all(
        remote
            .iter()
            .map(|ctx| async move { (*ctx, fetch::<T>(web, ctx, path).await) }),
    )
    .await;
    let mut found = Vec::new();
    let mut notes = Vec::new();
    for (ctx, answer) in answers {
        match answer {
            Ok(value) => found.push(value),
            Err(e) => notes.push(format!("{ctx}: {e}")),
        }
    }
    (found, notes)
}

fn console_off(session: &Session, title: &str) -> Result<Response, PageError> {
    page_with_status(
        StatusCode::OK,
        session,
        "admin/console_off.html",
        context! { title => title },
    )
}

// ---- Traces ------------------------------------------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct TraceFilter {
    route: String,
    status: String,
    min_ms: String,
}

/// Whether `summary` passes the filters (already checked).
fn shown(summary: &TraceSummary, route: &str, status: &str, min_ms: f64) -> bool {
    let route = route.trim().to_lowercase();
    let route_ok = route.is_empty()
        || summary.root_name.to_lowercase().contains(&route)
        || summary
            .root_route
            .as_deref()
            .is_some_and(|r| r.to_lowercase().contains(&route));
    let status_ok = match status {
        "error" => summary.is_error(),
        "ok" => !summary.is_error(),
        _ => true,
    };
    route_ok && status_ok && summary.duration_ms() >= min_ms
}

#[derive(Debug, Serialize)]
struct TraceRow {
    trace_id: String,
    name: String,
    route: String,
    status: String,
    error: bool,
    started: String,
    duration: String,
    spans: usize,
    services: String,
}

fn clock(unix_us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_us) * 1000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[hour]:[minute]:[second].[subsecond digits:3]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn millis(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

async fn traces_page(
    State(web): State<WebState>,
    session: Session,
    Query(filter): Query<TraceFilter>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let Some(sources) = sources() else {
        return console_off(&session, "Traces");
    };
    let mut errors = FieldErrors::new();
    let status = filter.status.trim().to_ascii_lowercase();
    if !["", "ok", "error"].contains(&status.as_str()) {
        errors.add("status", "Choose ok or error.");
    }
    let min_ms = match filter.min_ms.trim() {
        "" => 0.0,
        text => match text.parse::<f64>() {
            Ok(ms) if ms.is_finite() && ms >= 0.0 => ms,
            _ => {
                errors.add("min_ms", "Enter a number of milliseconds, 0 or more.");
                0.0
            }
        },
    };
    let mut merged: BTreeMap<String, TraceSummary> = BTreeMap::new();
    let mut notes = Vec::new();
    if errors.is_empty() {
        let (replies, failures) = fetch_all::<TracesReply>(&web, sources.remote, "/internal/console/traces").await;
        notes = failures;
        let all = sources
            .local
            .summaries()
            .into_iter()
            .chain(replies.into_iter().flat_map(|r| r.traces));
        for summary in all {
            let merged_one = match merged.remove(&summary.trace_id) {
                Some(earlier) => earlier.merge(summary),
                None => summary,
            };
            merged.insert(merged_one.trace_id.clone(), merged_one);
        }
    }
    let mut list: Vec<TraceSummary> = merged
        .into_values()
        .filter(|s| shown(s, &filter.route, &status, min_ms))
        .collect();
    list.sort_by_key(|s| std::cmp::Reverse(s.start_unix_us));
    let total = list.len();
    let rows: Vec<TraceRow> = list
        .into_iter()
        .take(TRACES_SHOWN)
        .map(|s| TraceRow {
            error: s.is_error(),
            name: s.root_name.clone(),
            route: s.root_route.clone().unwrap_or_default(),
            status: s.root_status.map(|c| c.to_string()).unwrap_or_default(),
            started: clock(s.start_unix_us),
            duration: millis(s.duration_ms()),
            spans: s.span_count,
            services: s.services.join(", "),
            trace_id: s.trace_id,
        })
        .collect();
    let code = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page_with_status(
        code,
        &session,
        "admin/traces.html",
        context! {
            traces => value_of(&rows),
            total => total,
            filter => value_of(&filter),
            errors => errors,
            notes => notes,
        },
    )
}

// ---- One trace ---------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Bar {
    span_id: String,
    name: String,
    service: String,
    kind: String,
    depth: usize,
    /// Left edge and width in percent of the trace's duration.
    offset_pct: f64,
    width_pct: f64,
    start_ms: String,
    duration: String,
    error: bool,
    attributes: Vec<(String, String)>,
}

fn is_trace_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The bars of a waterfall: parents first, each placed on the trace's time axis.
fn bars(spans: Vec<SpanRecord>) -> (Vec<Bar>, f64) {
    let placed = platform::console::waterfall(spans);
    let start = placed.iter().map(|p| p.span.start_unix_us).min().unwrap_or(0);
    let end = placed.iter().map(|p| p.span.end_unix_us()).max().unwrap_or(start);
    let total = (end - start).max(1) as f64;
    let bars = placed
        .into_iter()
        .map(|p| {
            let offset = (p.span.start_unix_us - start) as f64;
            Bar {
                offset_pct: (offset / total * 100.0).clamp(0.0, 100.0),
                // A span too short to see still gets a sliver.
                width_pct: (p.span.duration_us as f64 / total * 100.0).clamp(0.3, 100.0),
                start_ms: format!("+{}", millis(offset / 1000.0)),
                duration: millis(p.span.duration_us as f64 / 1000.0),
                depth: p.depth,
                error: p.span.error,
                span_id: p.span.span_id,
                name: p.span.name,
                service: p.span.service,
                kind: p.span.kind,
                attributes: p.span.attributes.into_iter().collect(),
            }
        })
        .collect();
    (bars, (end - start) as f64 / 1000.0)
}

async fn trace_page(
    State(web): State<WebState>,
    session: Session,
    Path(trace_id): Path<String>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let Some(sources) = sources() else {
        return console_off(&session, "Trace");
    };
    if !is_trace_id(&trace_id) {
        return Err(PageError::NotFound);
    }
    let trace_id = trace_id.to_ascii_lowercase();
    let (replies, mut notes) =
        fetch_all::<TraceReply>(&web, sources.remote, &format!("/internal/console/traces/{trace_id}")).await;
    let spans: Vec<SpanRecord> = sources
        .local
        .trace(&trace_id)
        .into_iter()
        .chain(replies.into_iter().flat_map(|r| r.spans))
        .collect();
    if spans.is_empty() {
        return page_with_status(
            StatusCode::NOT_FOUND,
            &session,
            "admin/trace.html",
            context! { trace_id => trace_id, bars => Vec::<()>::new(), notes => notes, logs => Vec::<()>::new() },
        );
    }
    let (bars, total_ms) = bars(spans);
    let filter = LogFilter {
        trace_id: Some(trace_id.clone()),
        ..LogFilter::default()
    };
    let (logs, log_notes) = gather_logs(&web, &sources, &filter).await;
    notes.extend(log_notes);
    page_with_status(
        StatusCode::OK,
        &session,
        "admin/trace.html",
        context! {
            trace_id => trace_id,
            bars => value_of(&bars),
            duration => millis(total_ms),
            logs => value_of(&logs),
            notes => notes,
        },
    )
}

// ---- Logs --------------------------------------------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct LogsQuery {
    level: String,
    trace_id: String,
    q: String,
}

#[derive(Debug, Serialize)]
struct LogRow {
    time: String,
    level: String,
    service: String,
    target: String,
    message: String,
    fields: String,
    trace_id: Option<String>,
}

async fn gather_logs(web: &WebState, sources: &Sources, filter: &LogFilter) -> (Vec<LogRow>, Vec<String>) {
    let pairs = [
        ("level", filter.level.as_deref().unwrap_or("")),
        ("trace_id", filter.trace_id.as_deref().unwrap_or("")),
        ("q", filter.q.as_deref().unwrap_or("")),
    ];
    let path = format!("/internal/console/logs{}", query_string(&pairs));
    let (replies, notes) = fetch_all::<LogsReply>(web, sources.remote, &path).await;
    let mut lines: Vec<LogRecord> = sources
        .local
        .logs(filter)
        .into_iter()
        .chain(replies.into_iter().flat_map(|r| r.logs))
        .collect();
    lines.sort_by_key(|l| std::cmp::Reverse(l.unix_us));
    let rows = lines
        .into_iter()
        .take(LOGS_SHOWN)
        .map(|l| LogRow {
            time: clock(l.unix_us),
            fields: l
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            level: l.level,
            service: l.service,
            target: l.target,
            message: l.message,
            trace_id: l.trace_id,
        })
        .collect();
    (rows, notes)
}

async fn logs_page(
    State(web): State<WebState>,
    session: Session,
    Query(query): Query<LogsQuery>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let Some(sources) = sources() else {
        return console_off(&session, "Logs");
    };
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let filter = LogFilter {
        level: non_empty(&query.level),
        trace_id: non_empty(&query.trace_id),
        q: non_empty(&query.q),
        limit: Some(LOGS_SHOWN),
    };
    let mut errors = FieldErrors::new();
    if let Err(problem) = filter.check() {
        for field in &problem.errors {
            errors.add(&field.field, super::sentence(&field.message));
        }
    }
    let (logs, notes) = if errors.is_empty() {
        gather_logs(&web, &sources, &filter).await
    } else {
        (Vec::new(), Vec::new())
    };
    let code = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page_with_status(
        code,
        &session,
        "admin/logs.html",
        context! {
            logs => value_of(&logs),
            filter => value_of(&query),
            errors => errors,
            notes => notes,
        },
    )
}

// ---- The status page's 15-minute history ---------------------------------------------------------

/// How often the history takes a point, and how many it keeps (15 minutes).
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const POINTS_KEPT: usize = 90;

#[derive(Debug, Clone, Serialize)]
struct Point {
    /// Unix seconds.
    at: i64,
    requests_per_second: f64,
    error_rate: Option<f64>,
    p95_ms: Option<f64>,
}

#[derive(Default)]
struct History {
    points: BTreeMap<&'static str, VecDeque<Point>>,
    previous: BTreeMap<&'static str, (std::time::Instant, Counters)>,
}

impl History {
    /// Adds a point from the counters of `context` now, against the previous sample.
    fn sample(&mut self, context: &'static str, at: i64, now: std::time::Instant, counters: Counters) {
        if let Some((then, before)) = self.previous.get(context)
            && let Some(delta) = counters.since(before)
        {
            let seconds = now.duration_since(*then).as_secs_f64().max(0.001);
            let points = self.points.entry(context).or_default();
            if points.len() >= POINTS_KEPT {
                points.pop_front();
            }
            points.push_back(Point {
                at,
                requests_per_second: delta.requests / seconds,
                error_rate: delta.error_rate(),
                p95_ms: delta.quantile(0.95).map(|s| s * 1000.0),
            });
        }
        self.previous.insert(context, (now, counters));
    }
}

static HISTORY: LazyLock<Mutex<History>> = LazyLock::new(|| Mutex::new(History::default()));
static SAMPLER: Once = Once::new();

/// Starts the process's history sampler (once): every 10 s each context's request counters.
pub(crate) fn start_sampler(web: &WebState) {
    if platform::console::installed().is_none() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    SAMPLER.call_once(|| {
        let web = web.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                sample_all(&web).await;
            }
        });
    });
}

async fn sample_all(web: &WebState) {
    let Some(sources) = sources() else { return };
    let texts: Vec<(&'static str, Option<String>)> = if sources.remote.is_empty() {
        // Embedded mode: every context's figures are in this process's recorder.
        let text = platform::metrics::render_text();
        CONTEXTS.iter().map(|c| (*c, Some(text.clone()))).collect()
    } else {
        futures::future::join_all(CONTEXTS.iter().map(|ctx| async move {
            let client = web.ops_peers().client(CALLER, ctx).ok()?;
            let mut call = client.get("/metrics").timeout(FETCH_TIMEOUT);
            if let Some(token) = &web.config().metrics_token {
                call = call.header("authorization", &format!("Bearer {token}"));
            }
            let reply = call.send().await.ok().filter(|r| r.is_success())?;
            Some(String::from_utf8_lossy(&reply.body).into_owned())
        }))
        .await
        .into_iter()
        .zip(CONTEXTS)
        .map(|(text, ctx)| (ctx, text))
        .collect()
    };
    let now = std::time::Instant::now();
    let at = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut history = HISTORY.lock().unwrap_or_else(|p| p.into_inner());
    for (context, text) in texts {
        if let Some(text) = text {
            let samples = parse_prometheus(&text);
            history.sample(context, at, now, Counters::of_service(&samples, context));
        }
    }
}

#[derive(Debug, Serialize)]
struct HistoryReply {
    enabled: bool,
    every_seconds: u64,
    contexts: BTreeMap<&'static str, Vec<Point>>,
}

async fn history_json(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_staff()?;
    start_sampler(&web);
    let enabled = platform::console::installed().is_some();
    let contexts = {
        let history = HISTORY.lock().unwrap_or_else(|p| p.into_inner());
        CONTEXTS
            .iter()
            .map(|c| {
                (
                    *c,
                    history
                        .points
                        .get(c)
                        .map(|p| p.iter().cloned().collect())
                        .unwrap_or_default(),
                )
            })
            .collect()
    };
    let mut response = Json(HistoryReply {
        enabled,
        every_seconds: SAMPLE_EVERY.as_secs(),
        contexts,
    })
    .into_response();
    response
        .headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(requests: f64, errors: f64) -> Counters {
        Counters {
            requests,
            errors,
            buckets: vec![(0.01, requests), (f64::INFINITY, requests)],
        }
    }

    #[test]
    fn the_history_keeps_rates_between_samples_and_at_most_15_minutes() {
        let mut history = History::default();
        let start = std::time::Instant::now();
        history.sample("catalog", 0, start, counters(10.0, 0.0));
        assert!(!history.points.contains_key("catalog"), "one sample has no rate yet");
        history.sample("catalog", 10, start + Duration::from_secs(10), counters(30.0, 5.0));
        let point = &history.points["catalog"][0];
        assert!((point.requests_per_second - 2.0).abs() < 1e-9);
        assert_eq!(point.error_rate, Some(0.25));
        assert!(point.p95_ms.is_some_and(|p| p <= 10.0));
        for i in 2..200 {
            history.sample(
                "catalog",
                i * 10,
                start + Duration::from_secs(i as u64 * 10),
                counters(30.0, 5.0),
            );
        }
        assert_eq!(history.points["catalog"].len(), POINTS_KEPT);
    }

    #[test]
    fn trace_filters_match_route_status_and_duration() {
        let summary = TraceSummary {
            trace_id: "t".into(),
            root_name: "POST /api/v1/orders".into(),
            root_route: Some("/api/v1/orders".into()),
            root_status: Some(500),
            root_start_unix_us: 0,
            has_root: true,
            start_unix_us: 0,
            end_unix_us: 25_000,
            span_count: 3,
            error_count: 0,
            services: vec!["embedded".into()],
        };
        assert!(shown(&summary, "orders", "error", 20.0));
        assert!(!shown(&summary, "orders", "ok", 0.0));
        assert!(!shown(&summary, "catalog", "", 0.0));
        assert!(!shown(&summary, "", "", 30.0));
    }
}
