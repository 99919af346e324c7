//! The built-in console's memory: the process's recent spans (grouped by trace) and log lines,
//! in bounded buffers, served to the admin pages at `/internal/console/*`.
//!
//! Spans arrive through [`ConsoleSpans`], an OpenTelemetry span processor added to the tracer
//! provider next to the OTLP exporter; log lines through [`ConsoleLog`], a tracing layer that
//! keeps INFO and up whatever `RUST_LOG` says. Both take one short `std` mutex per span or line
//! and never hold it across an await. The oldest whole trace is evicted once the span buffer is
//! full, the oldest line once the log buffer is.
//!
//! `EMPORIUM_CONSOLE` switches it on (embedded mode and `emporium dev` by default; `serve
//! --service` only when set), `EMPORIUM_CONSOLE_MAX_SPANS` and `EMPORIUM_CONSOLE_MAX_LOGS` bound
//! it. The endpoints ask for the `/metrics` scrape token: spans and logs name users and orders.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentelemetry::trace::{Link, SpanId, SpanKind, Status, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample, SpanData, SpanProcessor};
use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::config::{ConfigError, ConfigSource};
use crate::http::{Path, Query};

/// `EMPORIUM_CONSOLE*`: whether the console records, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// `None`: the mode decides (on in embedded mode, off for `serve --service`).
    pub enabled: Option<bool>,
    pub max_spans: usize,
    pub max_logs: usize,
    /// New traces recorded a second at most (see [`TraceBudget`]).
    pub traces_per_second: u32,
}

impl ConsoleSettings {
    pub fn from_source(src: &ConfigSource) -> Result<Self, ConfigError> {
        let enabled = match src.raw("EMPORIUM_CONSOLE") {
            None => None,
            Some(_) => Some(src.flag("EMPORIUM_CONSOLE", false)?),
        };
        Ok(Self {
            enabled,
            max_spans: src.number_in("EMPORIUM_CONSOLE_MAX_SPANS", 5_000, 100..=1_000_000)? as usize,
            max_logs: src.number_in("EMPORIUM_CONSOLE_MAX_LOGS", 2_000, 100..=1_000_000)? as usize,
            traces_per_second: src.number_in("EMPORIUM_CONSOLE_TRACES_PER_SECOND", 100, 1..=1_000_000)? as u32,
        })
    }

    /// Whether a process started as `default_on` (embedded mode) records.
    pub fn enabled_or(&self, default_on: bool) -> bool {
        self.enabled.unwrap_or(default_on)
    }
}

/// One finished span, as the pages show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    /// Absent on a trace's root; may name a span of another process.
    pub parent_span_id: Option<String>,
    pub name: String,
    /// The process that recorded it (`embedded`, `gateway`, `catalog`, ...).
    pub service: String,
    pub kind: String,
    pub start_unix_us: i64,
    pub duration_us: i64,
    pub error: bool,
    pub attributes: BTreeMap<String, String>,
}

impl SpanRecord {
    pub fn end_unix_us(&self) -> i64 {
        self.start_unix_us + self.duration_us
    }

    fn from_span_data(span: &SpanData, service: &str) -> Self {
        let micros = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        };
        let start = micros(span.start_time);
        let parent = (span.parent_span_id != SpanId::INVALID).then(|| span.parent_span_id.to_string());
        let mut attributes: BTreeMap<String, String> = span
            .attributes
            .iter()
            .filter(|kv| !IGNORED_ATTRIBUTES.contains(&kv.key.as_str()))
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        if let Status::Error { description } = &span.status
            && !description.is_empty()
        {
            attributes.insert("otel.status_description".into(), description.to_string());
        }
        // A request span is named once it is routed (`otel.name`), which the exporter reads but
        // the span data does not carry: name it after its method and route template here.
        let name = match (attributes.get("http.request.method"), attributes.get("http.route")) {
            (Some(method), Some(route)) if span.name == "http.request" => {
                format!("{method} {}", shown_route(route, attributes.get("url.path")))
            }
            _ => span.name.to_string(),
        };
        Self {
            trace_id: span.span_context.trace_id().to_string(),
            span_id: span.span_context.span_id().to_string(),
            parent_span_id: parent,
            name,
            service: service.to_owned(),
            kind: format!("{:?}", span.span_kind).to_ascii_lowercase(),
            start_unix_us: start,
            duration_us: (micros(span.end_time) - start).max(0),
            error: matches!(span.status, Status::Error { .. }),
            attributes,
        }
    }

    /// The part that answered a request span (`catalog`, `web`, ...; see `emporium.service`), else
    /// the process that recorded it: in embedded mode one process serves every context.
    pub fn answering_service(&self) -> &str {
        self.attributes
            .get(SERVICE_ATTRIBUTE)
            .map_or(self.service.as_str(), String::as_str)
    }

    fn route(&self) -> Option<&str> {
        let route = self.attributes.get("http.route")?;
        Some(shown_route(route, self.attributes.get("url.path")))
    }
}

/// Attributes tracing-opentelemetry adds to every span that say nothing to a reader.
/// A catch-all route (the gateway's `/api/{*rest}`) says less than the path it forwarded: the
/// console names such a request after its path (the console is no metric: paths are fine here).
fn shown_route<'a>(route: &'a str, path: Option<&'a String>) -> &'a str {
    match path {
        Some(path) if route.contains("{*") => path,
        _ => route,
    }
}

const IGNORED_ATTRIBUTES: &[&str] = &[
    "code.filepath",
    "code.namespace",
    "code.lineno",
    "code.file.path",
    "code.module.name",
    "code.line.number",
    "thread.id",
    "thread.name",
    "busy_ns",
    "idle_ns",
    "target",
];

/// Requests the console leaves out: probes, scrapes, assets and its own polling would otherwise
/// fill the buffer while nobody shops.
const UNRECORDED_ROUTES: &[&str] = &[
    "/metrics",
    "/health/live",
    "/health/ready",
    "/internal/console/",
    "/admin/status.json",
    "/admin/status/history.json",
    "/static/",
];

pub fn is_unrecorded_route(route: &str) -> bool {
    UNRECORDED_ROUTES.iter().any(|r| route.starts_with(r))
}

/// The access-log line of an unrecorded route (`GET /metrics -> 200`): left out of the logs as
/// its trace is left out of the traces.
fn is_unrecorded_access_line(message: &str) -> bool {
    message
        .split_once(' ')
        .and_then(|(_, rest)| rest.split(' ').next())
        .is_some_and(|route| route.starts_with('/') && is_unrecorded_route(route))
}

/// One trace as this process saw it: the list of recent traces merges these across processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    pub trace_id: String,
    /// The earliest span whose parent this process did not record (the root, if it is here).
    pub root_name: String,
    pub root_route: Option<String>,
    pub root_status: Option<u16>,
    pub root_start_unix_us: i64,
    /// The root span has no parent at all (it is the trace's real root).
    pub has_root: bool,
    pub start_unix_us: i64,
    pub end_unix_us: i64,
    pub span_count: usize,
    pub error_count: usize,
    pub services: Vec<String>,
}

impl TraceSummary {
    pub fn duration_ms(&self) -> f64 {
        (self.end_unix_us - self.start_unix_us) as f64 / 1000.0
    }

    pub fn is_error(&self) -> bool {
        self.error_count > 0 || self.root_status.is_some_and(|s| s >= 500)
    }

    fn of(trace_id: &str, spans: &[SpanRecord]) -> Option<Self> {
        let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        let root = spans
            .iter()
            .filter(|s| s.parent_span_id.as_deref().is_none_or(|p| !ids.contains(p)))
            .min_by_key(|s| (s.parent_span_id.is_some(), s.start_unix_us))?;
        let mut services: Vec<String> = spans.iter().map(|s| s.answering_service().to_owned()).collect();
        services.sort();
        services.dedup();
        Some(Self {
            trace_id: trace_id.to_owned(),
            root_name: root.name.clone(),
            root_route: root.route().map(str::to_owned),
            root_status: root
                .attributes
                .get("http.response.status_code")
                .and_then(|s| s.parse().ok()),
            root_start_unix_us: root.start_unix_us,
            has_root: root.parent_span_id.is_none(),
            start_unix_us: spans.iter().map(|s| s.start_unix_us).min()?,
            end_unix_us: spans.iter().map(SpanRecord::end_unix_us).max()?,
            span_count: spans.len(),
            error_count: spans.iter().filter(|s| s.error).count(),
            services,
        })
    }

    /// The same trace as seen by two processes: the root is the real one, or the earlier.
    pub fn merge(mut self, other: Self) -> Self {
        let other_root_wins = (other.has_root, -other.root_start_unix_us) > (self.has_root, -self.root_start_unix_us);
        if other_root_wins {
            self.root_name = other.root_name;
            self.root_route = other.root_route;
            self.root_status = other.root_status;
            self.root_start_unix_us = other.root_start_unix_us;
            self.has_root = other.has_root;
        }
        self.start_unix_us = self.start_unix_us.min(other.start_unix_us);
        self.end_unix_us = self.end_unix_us.max(other.end_unix_us);
        self.span_count += other.span_count;
        self.error_count += other.error_count;
        self.services.extend(other.services);
        self.services.sort();
        self.services.dedup();
        self
    }
}

/// Recent spans grouped by trace, at most `max_spans` of them: the oldest trace goes first.
#[derive(Debug)]
pub struct SpanBuffer {
    max_spans: usize,
    traces: HashMap<String, Vec<SpanRecord>>,
    /// Trace ids by the arrival of their first span, oldest first.
    order: VecDeque<String>,
    span_count: usize,
    /// Traces of unrecorded routes (their parent spans end after the children): dropped whole.
    ignored: VecDeque<String>,
}

const IGNORED_TRACES_KEPT: usize = 512;

impl SpanBuffer {
    pub fn new(max_spans: usize) -> Self {
        Self {
            max_spans: max_spans.max(1),
            traces: HashMap::new(),
            order: VecDeque::new(),
            span_count: 0,
            ignored: VecDeque::new(),
        }
    }

    pub fn span_count(&self) -> usize {
        self.span_count
    }

    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }

    pub fn insert(&mut self, span: SpanRecord) {
        if self.ignored.contains(&span.trace_id) {
            return;
        }
        if span.route().is_some_and(is_unrecorded_route) {
            if let Some(dropped) = self.traces.remove(&span.trace_id) {
                self.span_count -= dropped.len();
                self.order.retain(|t| *t != span.trace_id);
            }
            if self.ignored.len() >= IGNORED_TRACES_KEPT {
                self.ignored.pop_front();
            }
            self.ignored.push_back(span.trace_id);
            return;
        }
        let trace_id = span.trace_id.clone();
        match self.traces.get_mut(&trace_id) {
            Some(spans) => spans.push(span),
            None => {
                self.traces.insert(trace_id.clone(), vec![span]);
                self.order.push_back(trace_id.clone());
            }
        }
        self.span_count += 1;
        while self.span_count > self.max_spans {
            let Some(oldest) = self.order.front().cloned() else {
                break;
            };
            if oldest == trace_id {
                // One trace larger than the whole buffer: keep its newest spans.
                if let Some(spans) = self.traces.get_mut(&oldest) {
                    spans.remove(0);
                    self.span_count -= 1;
                }
                continue;
            }
            self.order.pop_front();
            if let Some(dropped) = self.traces.remove(&oldest) {
                self.span_count -= dropped.len();
            }
        }
    }

    /// Every trace held, newest first.
    pub fn summaries(&self) -> Vec<TraceSummary> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| TraceSummary::of(id, self.traces.get(id)?))
            .collect()
    }

    pub fn trace(&self, trace_id: &str) -> Vec<SpanRecord> {
        self.traces.get(trace_id).cloned().unwrap_or_default()
    }
}

/// The request span's attribute naming the part that answered (platform::http).
const SERVICE_ATTRIBUTE: &str = "emporium.service";

/// A span placed in a waterfall: its depth under its parents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placed {
    pub depth: usize,
    pub span: SpanRecord,
}

/// Parents before their children, siblings by start time; spans whose parent is missing (another
/// process's span not reached, or evicted) start their own subtree at depth 0.
pub fn waterfall(mut spans: Vec<SpanRecord>) -> Vec<Placed> {
    spans.sort_by(|a, b| {
        (a.start_unix_us, &a.span_id)
            .cmp(&(b.start_unix_us, &b.span_id))
            .then(b.duration_us.cmp(&a.duration_us))
    });
    spans.dedup_by(|a, b| a.span_id == b.span_id);
    let ids: HashSet<String> = spans.iter().map(|s| s.span_id.clone()).collect();
    let mut children: HashMap<String, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match &span.parent_span_id {
            Some(parent) if ids.contains(parent) && *parent != span.span_id => {
                children.entry(parent.clone()).or_default().push(i);
            }
            _ => roots.push(i),
        }
    }
    let mut placed = Vec::with_capacity(spans.len());
    let mut seen = vec![false; spans.len()];
    // A span is shown under the part that answered the request it belongs to: its own request
    // span's, or the nearest ancestor's recorded by the same process (its queries and calls).
    let mut shown_as: Vec<Option<String>> = vec![None; spans.len()];
    let mut stack: Vec<(usize, usize, Option<usize>)> = roots.into_iter().rev().map(|i| (i, 0, None)).collect();
    while let Some((i, depth, parent)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let inherited = parent
            .filter(|&p| spans[p].service == spans[i].service)
            .and_then(|p| shown_as[p].clone());
        shown_as[i] = Some(match spans[i].attributes.get(SERVICE_ATTRIBUTE) {
            Some(answering) => answering.clone(),
            None => inherited.unwrap_or_else(|| spans[i].service.clone()),
        });
        if let Some(kids) = children.get(&spans[i].span_id) {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1, Some(i))));
        }
        let mut span = spans[i].clone();
        if let Some(service) = &shown_as[i] {
            span.service.clone_from(service);
        }
        placed.push(Placed { depth, span });
    }
    placed
}

/// One log line, as the logs page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub timestamp: String,
    pub unix_us: i64,
    pub level: String,
    pub target: String,
    pub message: String,
    pub fields: BTreeMap<String, String>,
    pub trace_id: Option<String>,
    pub span: Option<String>,
    pub service: String,
}

/// What the logs page asks for.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogFilter {
    /// The least severe level shown (`info` shows INFO, WARN and ERROR).
    pub level: Option<String>,
    pub trace_id: Option<String>,
    /// Words that must appear in the message, target or a field value (case-insensitive).
    pub q: Option<String>,
    pub limit: Option<usize>,
}

/// The levels from least to most severe.
const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

pub fn level_rank(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| l.eq_ignore_ascii_case(level.trim()))
}

impl LogFilter {
    /// Refuses a level that is not one, naming the field.
    pub fn check(&self) -> Result<(), Problem> {
        if let Some(level) = self.level.as_deref().filter(|l| !l.trim().is_empty())
            && level_rank(level).is_none()
        {
            return Err(Problem::invalid_field(
                "level",
                "must be one of trace, debug, info, warn, error",
            ));
        }
        if let Some(id) = self.trace_id.as_deref().map(str::trim).filter(|t| !t.is_empty())
            && (id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Problem::invalid_field("trace_id", "must be 32 hexadecimal digits"));
        }
        Ok(())
    }

    pub fn matches(&self, line: &LogRecord) -> bool {
        if let Some(min) = self.level.as_deref().and_then(level_rank)
            && level_rank(&line.level).unwrap_or(0) < min
        {
            return false;
        }
        if let Some(id) = self.trace_id.as_deref().map(str::trim).filter(|t| !t.is_empty())
            && !line.trace_id.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(id))
        {
            return false;
        }
        if let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let q = q.to_lowercase();
            let found = line.message.to_lowercase().contains(&q)
                || line.target.to_lowercase().contains(&q)
                || line.fields.values().any(|v| v.to_lowercase().contains(&q));
            if !found {
                return false;
            }
        }
        true
    }
}

/// Recent log lines, at most `max` of them.
#[derive(Debug)]
pub struct LogBuffer {
    max: usize,
    lines: VecDeque<LogRecord>,
}

impl LogBuffer {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            lines: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn push(&mut self, line: LogRecord) {
        if self.lines.len() >= self.max {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// Matching lines, newest first, at most `filter.limit` (default 500).
    pub fn query(&self, filter: &LogFilter) -> Vec<LogRecord> {
        self.lines
            .iter()
            .rev()
            .filter(|l| filter.matches(l))
            .take(filter.limit.unwrap_or(500).clamp(1, 5_000))
            .cloned()
            .collect()
    }
}

/// A process's console: both buffers and the name its records carry.
#[derive(Debug)]
pub struct Console {
    service: String,
    spans: Mutex<SpanBuffer>,
    logs: Mutex<LogBuffer>,
}

static INSTALLED: OnceLock<Arc<Console>> = OnceLock::new();

impl Console {
    pub fn new(service: &str, settings: &ConsoleSettings) -> Arc<Self> {
        Arc::new(Self {
            service: service.to_owned(),
            spans: Mutex::new(SpanBuffer::new(settings.max_spans)),
            logs: Mutex::new(LogBuffer::new(settings.max_logs)),
        })
    }

    /// Makes `console` the process's (the first one wins; telemetry is process-wide too).
    pub fn install(console: Arc<Console>) -> Arc<Console> {
        INSTALLED.get_or_init(|| console).clone()
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn record_span(&self, span: SpanRecord) {
        crate::sync::lock(&self.spans).insert(span);
    }

    pub fn record_log(&self, line: LogRecord) {
        crate::sync::lock(&self.logs).push(line);
    }

    pub fn summaries(&self) -> Vec<TraceSummary> {
        crate::sync::lock(&self.spans).summaries()
    }

    pub fn trace(&self, trace_id: &str) -> Vec<SpanRecord> {
        crate::sync::lock(&self.spans).trace(trace_id)
    }

    pub fn logs(&self, filter: &LogFilter) -> Vec<LogRecord> {
        crate::sync::lock(&self.logs).query(filter)
    }
}

/// The console of this process, when `EMPORIUM_CONSOLE` is on.
pub fn installed() -> Option<Arc<Console>> {
    INSTALLED.get().cloned()
}

/// Feeds finished spans into a [`Console`].
#[derive(Debug)]
pub struct ConsoleSpans(pub Arc<Console>);

impl SpanProcessor for ConsoleSpans {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.record_span(SpanRecord::from_span_data(&span, &self.0.service));
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// Which new traces the console records, when it is the only consumer of spans (no OTLP
/// export): for each kind of root span (`http.request`, `event.handle`, `db.query`, ...) at most
/// `per_second` a second on average, in bursts of as many (a token bucket each, so start-up's
/// thousands of seeding queries leave the first requests their share), and never the probes,
/// scrapes and assets it would leave out anyway. A span whose parent came with the request or
/// the event keeps its parent's decision (the sampler sits under `ParentBased`), so a trace is
/// whole or absent across the processes of `emporium dev`.
///
/// Why: recording every request cost a third of a cached read's throughput (spans converted
/// to strings under a mutex, one log line copied a request) and, at thousands of requests a
/// second, the buffers held well under a second of history. A shop with fewer requests a
/// second than the budget keeps every trace.
#[derive(Debug, Clone)]
pub struct TraceBudget {
    per_second: f64,
    /// By root span name: the code's own literals, so a fast hash (SipHash was a third of a
    /// decision's cost).
    buckets: Arc<Mutex<foldhash::HashMap<String, Bucket>>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl TraceBudget {
    pub fn per_second(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            buckets: Arc::default(),
        }
    }

    /// Whether a trace whose root span is named `root` may be recorded at `now` (and takes its
    /// token if so).
    fn take(&self, root: &str, now: Instant) -> bool {
        let mut buckets = crate::sync::lock(&self.buckets);
        let bucket = match buckets.get_mut(root) {
            Some(bucket) => bucket,
            // Span names are the code's own literals: a handful of buckets.
            None => buckets.entry(root.to_owned()).or_insert(Bucket {
                tokens: self.per_second,
                refilled: now,
            }),
        };
        let earned = now.saturating_duration_since(bucket.refilled).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + earned).min(self.per_second);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl ShouldSample for TraceBudget {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        _trace_id: TraceId,
        name: &str,
        _span_kind: &SpanKind,
        attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let unrecorded = attributes
            .iter()
            .any(|kv| kv.key.as_str() == "url.path" && is_unrecorded_route(kv.value.as_str().as_ref()));
        let record = !unrecorded && self.take(name, Instant::now());
        SamplingResult {
            decision: if record {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: parent_context
                .map(|cx| cx.span().span_context().trace_state().clone())
                .unwrap_or_default(),
        }
    }
}

thread_local! {
    /// Set while a request whose trace the console did not record logs its access line.
    static UNRECORDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `log` with the console leaving out its INFO lines when `recorded` is false: the access
/// line of a request whose trace [`TraceBudget`] dropped goes to stdout as usual, but not into
/// the console, whose log view then matches its traces (warnings and errors are always kept).
pub fn log_unless_recorded<R>(recorded: bool, log: impl FnOnce() -> R) -> R {
    if recorded {
        return log();
    }
    UNRECORDED.with(|flag| flag.set(true));
    let result = log();
    UNRECORDED.with(|flag| flag.set(false));
    result
}

/// Copies log lines (INFO and up) into a [`Console`], with the trace id of the span they
/// happened in.
pub struct ConsoleLog(pub Arc<Console>);

impl<S> tracing_subscriber::Layer<S> for ConsoleLog
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::WARN && UNRECORDED.with(Cell::get) {
            return;
        }
        let mut fields = Vec::new();
        event.record(&mut crate::telemetry::FieldVisitor(&mut fields));
        let mut message = String::new();
        let mut target = meta.target().to_owned();
        let mut own = BTreeMap::new();
        for (name, value) in fields {
            let text = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            match name {
                "message" => message = text,
                "log.target" => target = text,
                n if n.starts_with("log.") => {}
                n => {
                    own.insert(n.to_owned(), text);
                }
            }
        }
        if is_unrecorded_access_line(&message) {
            return;
        }
        let mut trace_id = None;
        let mut span_name = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                span_name.get_or_insert_with(|| span.name().to_owned());
                if let Some(id) = span.extensions().get::<crate::telemetry::RequestTraceId>() {
                    trace_id = Some(id.0.to_string());
                    break;
                }
            }
        }
        let now = time::OffsetDateTime::now_utc();
        self.0.record_log(LogRecord {
            timestamp: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            unix_us: i64::try_from(now.unix_timestamp_nanos() / 1000).unwrap_or(0),
            level: meta.level().as_str().to_owned(),
            target,
            message,
            fields: own,
            trace_id,
            span: span_name,
            service: self.0.service.clone(),
        });
    }
}

// ---- The internal endpoints ------------------------------------------------------------------

#[derive(Clone)]
struct Endpoints {
    console: Arc<Console>,
    token: Option<Arc<str>>,
}

/// `/internal/console/traces`, `/internal/console/traces/{trace_id}` and `/internal/console/logs`
/// for holders of the scrape `token` (`EMPORIUM_METRICS_TOKEN`).
pub fn router(console: Arc<Console>, token: Option<String>) -> Router {
    let token: Option<Arc<str>> = token.filter(|t| !t.trim().is_empty()).map(|t| Arc::from(t.trim()));
    Router::new()
        .route("/internal/console/traces", get(traces))
        .route("/internal/console/traces/{trace_id}", get(trace))
        .route("/internal/console/logs", get(logs))
        .with_state(Endpoints { console, token })
}

/// What `/internal/console/traces` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracesReply {
    pub service: String,
    pub traces: Vec<TraceSummary>,
}

/// What `/internal/console/traces/{trace_id}` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceReply {
    pub spans: Vec<SpanRecord>,
}

/// What `/internal/console/logs` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsReply {
    pub logs: Vec<LogRecord>,
}

async fn traces(State(state): State<Endpoints>, headers: HeaderMap) -> Response {
    if let Err(refused) = crate::metrics::check_scrape_token(state.token.as_deref(), &headers) {
        return refused;
    }
    axum::Json(TracesReply {
        service: state.console.service.clone(),
        traces: state.console.summaries(),
    })
    .into_response()
}

async fn trace(State(state): State<Endpoints>, headers: HeaderMap, Path(trace_id): Path<String>) -> Response {
    if let Err(refused) = crate::metrics::check_scrape_token(state.token.as_deref(), &headers) {
        return refused;
    }
    if trace_id.len() != 32 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Problem::invalid_field("trace_id", "must be 32 hexadecimal digits").into_response();
    }
    axum::Json(TraceReply {
        spans: state.console.trace(&trace_id.to_ascii_lowercase()),
    })
    .into_response()
}

async fn logs(State(state): State<Endpoints>, headers: HeaderMap, Query(filter): Query<LogFilter>) -> Response {
    if let Err(refused) = crate::metrics::check_scrape_token(state.token.as_deref(), &headers) {
        return refused;
    }
    if let Err(problem) = filter.check() {
        return problem.into_response();
    }
    axum::Json(LogsReply {
        logs: state.console.logs(&filter),
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: &str, id: &str, parent: Option<&str>, start: i64, duration: i64) -> SpanRecord {
        SpanRecord {
            trace_id: trace.to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.map(str::to_owned),
            name: format!("span {id}"),
            service: "embedded".into(),
            kind: "internal".into(),
            start_unix_us: start,
            duration_us: duration,
            error: false,
            attributes: BTreeMap::new(),
        }
    }

    fn routed(mut s: SpanRecord, route: &str, status: u16) -> SpanRecord {
        s.attributes.insert("http.route".into(), route.into());
        s.attributes
            .insert("http.response.status_code".into(), status.to_string());
        s
    }

    #[test]
    fn spans_are_grouped_by_trace_and_the_oldest_trace_is_evicted_whole() {
        let mut buffer = SpanBuffer::new(5);
        buffer.insert(span("t1", "a", None, 0, 10));
        buffer.insert(span("t1", "b", Some("a"), 1, 5));
        buffer.insert(span("t2", "c", None, 2, 10));
        buffer.insert(span("t2", "d", Some("c"), 3, 5));
        buffer.insert(span("t1", "e", Some("a"), 4, 1));
        assert_eq!((buffer.trace_count(), buffer.span_count()), (2, 5));
        assert_eq!(buffer.trace("t1").len(), 3);
        // The sixth span makes room by dropping t1, the trace that arrived first, with all three.
        buffer.insert(span("t3", "f", None, 5, 1));
        assert_eq!((buffer.trace_count(), buffer.span_count()), (2, 3));
        assert!(buffer.trace("t1").is_empty());
        let newest_first: Vec<String> = buffer.summaries().into_iter().map(|s| s.trace_id).collect();
        assert_eq!(newest_first, ["t3", "t2"]);
    }

    #[test]
    fn a_trace_larger_than_the_buffer_keeps_its_newest_spans() {
        let mut buffer = SpanBuffer::new(3);
        for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            buffer.insert(span("t", id, None, i as i64, 1));
        }
        let ids: Vec<String> = buffer.trace("t").into_iter().map(|s| s.span_id).collect();
        assert_eq!(ids, ["c", "d", "e"]);
        assert_eq!(buffer.span_count(), 3);
    }

    #[test]
    fn probes_and_scrapes_are_left_out_with_their_child_spans() {
        let mut buffer = SpanBuffer::new(100);
        buffer.insert(span("probe", "child", Some("root"), 1, 1));
        buffer.insert(routed(span("probe", "root", None, 0, 3), "/metrics", 200));
        buffer.insert(span("probe", "late", Some("root"), 2, 1));
        buffer.insert(routed(span("shop", "r", None, 0, 3), "/api/v1/catalog/products", 200));
        assert_eq!(buffer.trace_count(), 1);
        assert_eq!(buffer.span_count(), 1);
        assert!(is_unrecorded_route("/internal/console/traces"));
        assert!(is_unrecorded_access_line("GET /health/live -> 200"));
        assert!(!is_unrecorded_access_line("GET /api/v1/catalog/products -> 200"));
        assert!(!is_unrecorded_access_line("loaded the demo catalog"));
        assert!(!is_unrecorded_route("/admin/traces"));
    }

    #[test]
    fn a_summary_names_the_root_and_counts_errors_and_services() {
        let mut buffer = SpanBuffer::new(100);
        let mut failing = span("t", "db", Some("root"), 2, 3);
        failing.error = true;
        failing.service = "catalog".into();
        buffer.insert(failing);
        buffer.insert(routed(span("t", "root", None, 0, 10), "/api/v1/orders", 500));
        let summary = &buffer.summaries()[0];
        assert_eq!(summary.root_name, "span root");
        assert_eq!(summary.root_route.as_deref(), Some("/api/v1/orders"));
        assert_eq!(summary.root_status, Some(500));
        assert_eq!((summary.span_count, summary.error_count), (2, 1));
        assert_eq!(summary.services, ["catalog", "embedded"]);
        assert!(summary.is_error());
        assert!((summary.duration_ms() - 0.01).abs() < 1e-9);
    }

    #[test]
    fn summaries_from_two_processes_merge_under_the_real_root() {
        let gateway =
            TraceSummary::of("t", &[routed(span("t", "g", None, 100, 50), "/api/v1/orders", 201)]).expect("summary");
        let mut ordering_span = routed(span("t", "o", Some("g"), 110, 30), "/api/v1/orders", 201);
        ordering_span.service = "ordering".into();
        let ordering = TraceSummary::of("t", &[ordering_span]).expect("summary");
        assert!(!ordering.has_root);
        for merged in [gateway.clone().merge(ordering.clone()), ordering.merge(gateway)] {
            assert!(merged.has_root);
            assert_eq!(merged.root_start_unix_us, 100);
            assert_eq!(merged.span_count, 2);
            assert_eq!((merged.start_unix_us, merged.end_unix_us), (100, 150));
            assert_eq!(merged.services, ["embedded", "ordering"]);
        }
    }

    #[test]
    fn a_waterfall_puts_parents_before_children_and_indents_them() {
        let spans = vec![
            span("t", "grandchild", Some("child2"), 6, 1),
            span("t", "child2", Some("root"), 5, 3),
            span("t", "orphan", Some("elsewhere"), 1, 1),
            span("t", "child1", Some("root"), 2, 2),
            span("t", "root", None, 0, 10),
            span("t", "child1", Some("root"), 2, 2),
        ];
        let placed: Vec<(usize, String)> = waterfall(spans)
            .into_iter()
            .map(|p| (p.depth, p.span.span_id))
            .collect();
        let expected = [
            (0, "root"),
            (1, "child1"),
            (1, "child2"),
            (2, "grandchild"),
            (0, "orphan"),
        ];
        assert_eq!(
            placed,
            expected.map(|(d, id)| (d, id.to_owned())).to_vec(),
            "duplicates from two fetches appear once"
        );
    }

    #[test]
    fn a_catch_all_route_is_shown_as_the_path_it_forwarded() {
        let mut gateway = routed(span("t", "gw", None, 0, 10), "/api/{*rest}", 200);
        gateway
            .attributes
            .insert("url.path".into(), "/api/v1/catalog/products".into());
        let summary = TraceSummary::of("t", &[gateway]).expect("summary");
        assert_eq!(summary.root_route.as_deref(), Some("/api/v1/catalog/products"));
        let path = "/p/lamp".to_owned();
        assert_eq!(
            shown_route("/p/{slug}", Some(&path)),
            "/p/{slug}",
            "templates stay templates"
        );
        assert_eq!(shown_route("/api/{*rest}", None), "/api/{*rest}");
    }

    #[test]
    fn spans_are_shown_under_the_part_that_answered_their_request() {
        let answered_by = |mut s: SpanRecord, service: &str| {
            s.attributes.insert(SERVICE_ATTRIBUTE.into(), service.into());
            s
        };
        let mut in_gateway = span("t", "gw-query", Some("page"), 9, 1);
        in_gateway.service = "gateway".into();
        let spans = vec![
            answered_by(span("t", "page", None, 0, 20), "web"),
            span("t", "call", Some("page"), 1, 8),
            answered_by(span("t", "catalog", Some("call"), 2, 6), "catalog"),
            span("t", "query", Some("catalog"), 3, 2),
            in_gateway,
        ];
        let shown: Vec<(String, String)> = waterfall(spans)
            .into_iter()
            .map(|p| (p.span.span_id, p.span.service))
            .collect();
        let expected = [
            ("page", "web"),
            ("call", "web"),
            ("catalog", "catalog"),
            ("query", "catalog"),
            ("gw-query", "gateway"),
        ];
        assert_eq!(
            shown,
            expected.map(|(id, s)| (id.to_owned(), s.to_owned())).to_vec(),
            "a process's own spans inherit; another process's keep their name"
        );
        let summary = TraceSummary::of("t", &[answered_by(span("t", "r", None, 0, 1), "cart")]).expect("summary");
        assert_eq!(summary.services, ["cart"]);
    }

    fn line(level: &str, message: &str, trace: Option<&str>) -> LogRecord {
        LogRecord {
            timestamp: String::new(),
            unix_us: 0,
            level: level.into(),
            target: "emporium".into(),
            message: message.into(),
            fields: BTreeMap::from([("status".to_owned(), "200".to_owned())]),
            trace_id: trace.map(str::to_owned),
            span: None,
            service: "embedded".into(),
        }
    }

    #[test]
    fn the_log_buffer_is_bounded_and_filters_by_level_trace_and_text() {
        let mut logs = LogBuffer::new(3);
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        logs.push(line("INFO", "first", None));
        logs.push(line("INFO", "GET /a -> 200", Some(trace)));
        logs.push(line("WARN", "slow query", None));
        logs.push(line("ERROR", "POST /b failed with 500", Some(trace)));
        assert_eq!(logs.len(), 3, "the oldest line made room");
        let all = logs.query(&LogFilter::default());
        assert_eq!(all[0].message, "POST /b failed with 500", "newest first");
        let warn = LogFilter {
            level: Some("warn".into()),
            ..LogFilter::default()
        };
        assert_eq!(logs.query(&warn).len(), 2);
        let by_trace = LogFilter {
            trace_id: Some(trace.to_uppercase()),
            ..LogFilter::default()
        };
        assert_eq!(logs.query(&by_trace).len(), 2);
        let text = LogFilter {
            q: Some("SLOW".into()),
            ..LogFilter::default()
        };
        assert_eq!(logs.query(&text).len(), 1);
        let limited = LogFilter {
            limit: Some(1),
            ..LogFilter::default()
        };
        assert_eq!(logs.query(&limited).len(), 1);
        assert!(
            LogFilter {
                level: Some("loud".into()),
                ..LogFilter::default()
            }
            .check()
            .is_err()
        );
        assert!(
            LogFilter {
                trace_id: Some("xyz".into()),
                ..LogFilter::default()
            }
            .check()
            .is_err()
        );
    }

    /// The lines a console keeps of what `log` writes.
    fn console_logs_of(log: impl FnOnce()) -> Vec<LogRecord> {
        use tracing_subscriber::layer::SubscriberExt;
        let settings = ConsoleSettings {
            enabled: Some(true),
            max_spans: 100,
            max_logs: 100,
            traces_per_second: 100,
        };
        let console = Console::new("embedded", &settings);
        let subscriber = tracing_subscriber::registry().with(ConsoleLog(console.clone()));
        tracing::subscriber::with_default(subscriber, log);
        console.logs(&LogFilter::default())
    }

    #[test]
    fn log_lines_carry_the_trace_id_of_their_span() {
        let lines = console_logs_of(|| {
            let request = tracing::info_span!("http.request");
            let trace_id =
                opentelemetry::trace::TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("a trace id");
            crate::telemetry::attach_trace_id(&request, trace_id);
            let _request = request.enter();
            let inner = tracing::info_span!("db");
            let _inner = inner.enter();
            tracing::info!(status = 200, "GET / -> {}", 200);
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].message, "GET / -> 200");
        assert_eq!(lines[0].trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(lines[0].span.as_deref(), Some("db"));
        assert_eq!(lines[0].fields["status"], "200");
    }

    #[test]
    fn settings_default_by_mode_and_are_bounded() {
        let src = |pairs: &[(&str, &str)]| {
            ConfigSource::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).expect("source")
        };
        let default = ConsoleSettings::from_source(&src(&[])).expect("settings");
        assert!(default.enabled_or(true) && !default.enabled_or(false));
        let on = ConsoleSettings::from_source(&src(&[("EMPORIUM_CONSOLE", "on")])).expect("settings");
        assert!(on.enabled_or(false));
        let err = ConsoleSettings::from_source(&src(&[("EMPORIUM_CONSOLE_MAX_SPANS", "5")])).expect_err("too few");
        assert_eq!(err.var, "EMPORIUM_CONSOLE_MAX_SPANS");
        let err = ConsoleSettings::from_source(&src(&[("EMPORIUM_CONSOLE", "maybe")])).expect_err("not a flag");
        assert_eq!(err.var, "EMPORIUM_CONSOLE");
    }

    #[test]
    fn the_trace_budget_allows_a_burst_then_refills_with_time() {
        let budget = TraceBudget::per_second(3);
        let start = Instant::now();
        let take = |at: Instant| budget.take("http.request", at);
        let taken: Vec<bool> = (0..4).map(|_| take(start)).collect();
        assert_eq!(
            taken,
            [true, true, true, false],
            "a full bucket holds one second's worth"
        );
        assert!(
            !take(start + std::time::Duration::from_millis(100)),
            "a third of a token"
        );
        assert!(
            take(start + std::time::Duration::from_millis(400)),
            "one token after 1/3 s"
        );
        assert!(!take(start + std::time::Duration::from_millis(400)));
        // Other roots have their own bucket: background queries do not starve requests.
        assert!(budget.take("db.query", start + std::time::Duration::from_millis(400)));
        // A long quiet spell refills to one second's worth, not more.
        let later = start + std::time::Duration::from_secs(60);
        let taken = (0..5).filter(|_| take(later)).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn the_trace_budget_never_records_probes_and_spends_nothing_on_them() {
        let budget = TraceBudget::per_second(1);
        let decide = |path: &str| {
            budget
                .should_sample(
                    None,
                    TraceId::from(7u128),
                    "http.request",
                    &SpanKind::Server,
                    &[KeyValue::new("url.path", path.to_owned())],
                    &[],
                )
                .decision
        };
        assert_eq!(decide("/health/ready"), SamplingDecision::Drop);
        assert_eq!(decide("/metrics"), SamplingDecision::Drop);
        assert_eq!(decide("/api/v1/catalog/products"), SamplingDecision::RecordAndSample);
        assert_eq!(
            decide("/api/v1/catalog/products"),
            SamplingDecision::Drop,
            "the budget is spent"
        );
    }

    #[test]
    fn info_lines_of_unrecorded_requests_stay_out_and_warnings_stay_in() {
        let lines = console_logs_of(|| {
            log_unless_recorded(false, || tracing::info!("GET /a -> 200"));
            log_unless_recorded(false, || tracing::warn!("GET /b -> 429"));
            log_unless_recorded(true, || tracing::info!("GET /c -> 200"));
            tracing::info!("GET /d -> 200");
        });
        let messages: Vec<String> = lines.into_iter().map(|l| l.message).collect();
        let mut sorted = messages.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["GET /b -> 429", "GET /c -> 200", "GET /d -> 200"],
            "{messages:?}"
        );
    }
}
