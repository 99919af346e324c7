//! Logs and traces. Log lines are JSON (or human-readable on a terminal) and, inside a request,
//! carry its `request_id` and `trace_id`. Traces follow W3C `traceparent`; spans are exported over
//! OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! A JSON line is one flat object: `timestamp`, `level`, `target`, `message`, the event's fields,
//! then the fields of the spans it happened in (outermost first, an inner span's value winning,
//! the event's own fields winning over both) and `span`, the innermost span's name. Each field is
//! written once; empty fields and the `otel.*` fields meant for the trace exporter are left out.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::Filter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, PlatformConfig};

/// Flushes and shuts down trace export when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("trace export shutdown: {e}");
        }
    }
}

/// Installs the global subscriber. Call once, early, from the binary. `console_by_default`: the
/// built-in console records unless `EMPORIUM_CONSOLE` says otherwise (embedded mode).
pub fn init(service: &str, cfg: &PlatformConfig, console_by_default: bool) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(format!("emporium-{service}"))
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    let mut export_error = None;
    let mut exporting = false;
    if let Some(endpoint) = &cfg.otlp_endpoint {
        let traces_endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(traces_endpoint)
            .build()
        {
            Ok(exporter) => {
                builder = builder.with_batch_exporter(exporter);
                exporting = true;
            }
            Err(e) => export_error = Some(e.to_string()),
        }
    }
    let console = cfg
        .console
        .enabled_or(console_by_default)
        .then(|| crate::console::Console::install(crate::console::Console::new(service, &cfg.console)));
    if let Some(console) = &console {
        builder = builder.with_span_processor(crate::console::ConsoleSpans(console.clone()));
        if cfg.otlp_endpoint.is_none() {
            // Only the console reads spans: it records what its budget allows (an exporter,
            // when there is one, gets every trace as before).
            builder = builder.with_sampler(opentelemetry_sdk::trace::Sampler::parent_based(
                crate::console::TraceBudget::per_second(cfg.console.traces_per_second),
            ));
        }
    } else if !exporting {
        // Nothing in this process reads spans. The default sampler (always on) would still record
        // every span, give it its attributes and end it for nobody: in a production context
        // without OTLP that was most of the tracing cost of a request (the gateway recorded and
        // formatted its client span's fields on every proxied read). A sampled parent's decision
        // is kept and passed on, so a process further along that exports still gets the trace.
        builder = builder.with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
            opentelemetry_sdk::trace::Sampler::AlwaysOff,
        )));
    }
    let provider = builder.build();
    let tracer = provider.tracer("emporium");
    opentelemetry::global::set_tracer_provider(provider.clone());

    let filter = EnvFilter::try_new(&cfg.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    REQUEST_SPANS_LOGGED.store(may_show(filter.max_level_hint(), LevelFilter::INFO), Ordering::Relaxed);
    SQL_STATEMENTS_LOGGED.store(may_show(filter.max_level_hint(), LevelFilter::DEBUG), Ordering::Relaxed);
    let json = match cfg.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let fmt_layer = if json {
        JsonLog::new(std::io::stdout).boxed()
    } else {
        tracing_subscriber::fmt::layer().compact().boxed()
    };
    // Each layer filters for itself: `RUST_LOG` sets log verbosity, and quieter logs must not
    // switch off tracing (request and DB spans are INFO). Traces take spans from INFO up but
    // only the events that matter (warnings and errors): every INFO line (one access-log line a
    // request) turned into a span event cost an allocation-heavy conversion per request.
    let trace_filter = tracing_subscriber::filter::filter_fn(|meta| {
        if meta.is_span() {
            *meta.level() <= tracing::Level::INFO
        } else {
            *meta.level() <= tracing::Level::WARN
        }
    });
    // The console keeps INFO and up whatever `RUST_LOG` says: it is where one looks first.
    let console_layer = console.map(crate::console::ConsoleLog);
    let console_layer = console_layer.map(|layer| layer.with_filter(AskEveryTime(LevelFilter::INFO)));
    let _ = tracing_subscriber::registry()
        .with(fmt_layer.with_filter(AskEveryTime(filter)))
        .with(console_layer)
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                // Per span, the layer would name the thread (an allocation) and time each poll
                // (two clock reads): meaningless for tasks that move between threads, and
                // neither the console nor a trace backend's waterfall uses them.
                .with_threads(false)
                .with_tracked_inactivity(false)
                // Entering a span would also start its OpenTelemetry span and make it the
                // thread's current OpenTelemetry context (undone on exit), on every poll. Nothing
                // here reads that context: outgoing `traceparent`s and log lines ask the tracing
                // span (`OpenTelemetrySpanExt::context`), and a child span finds its parent
                // through the registry.
                .with_context_activation(false)
                .with_filter(AskEveryTime(trace_filter)),
        )
        .try_init();
    if let Some(e) = export_error {
        tracing::warn!(error = %e, "OTLP trace export disabled: exporter could not be built");
    } else if let Some(endpoint) = &cfg.otlp_endpoint {
        tracing::info!(%endpoint, "exporting traces over OTLP/HTTP");
    }
    TelemetryGuard { provider }
}

/// Whether log lines may show request spans' fields: the log filter lets INFO through somewhere
/// (request spans are INFO). True until [`init`] says otherwise, so a process that never set up
/// telemetry loses nothing.
static REQUEST_SPANS_LOGGED: AtomicBool = AtomicBool::new(true);

pub fn request_spans_logged() -> bool {
    REQUEST_SPANS_LOGGED.load(Ordering::Relaxed)
}

/// Whether the log filter may show sqlx's DEBUG line per statement (`RUST_LOG=sqlx::query=debug`).
/// True until [`init`] says otherwise, as above.
static SQL_STATEMENTS_LOGGED: AtomicBool = AtomicBool::new(true);

/// Whether a log filter whose most verbose level is `max_level` may let a `level` line through
/// (no hint: it may).
fn may_show(max_level: Option<LevelFilter>, level: LevelFilter) -> bool {
    max_level.is_none_or(|most| most >= level)
}

/// The level sqlx logs every statement at: DEBUG when the log filter may show it, else off.
/// Left at DEBUG, sqlx asks after every statement whether DEBUG is wanted; under this subscriber
/// the answer came back yes even with `RUST_LOG=warn`, so it summarised the SQL and sent an event
/// that every layer then dropped: 2% of an embedded checkout's CPU in a profile. Slow statements
/// (over 1 s) are still logged at WARN either way.
pub(crate) fn sql_statement_log_level() -> log::LevelFilter {
    if SQL_STATEMENTS_LOGGED.load(Ordering::Relaxed) {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Off
    }
}

/// A per-layer filter that is consulted on every span and event, never cached as "always".
///
/// Per-layer filters hand their verdict from `enabled` to `on_new_span`/`on_event` through a
/// thread-local. A callsite whose interest is cached as "always" skips `enabled`, so its span
/// read whatever the last `enabled` call on that thread left there: after sqlx's query logger
/// asked `log::log_enabled!` for a disabled level, the next request span on that worker was
/// silently dropped by every layer — no trace context, no `trace_id` in its access line (the
/// cross-process trace test caught it; upstream: tokio-rs/tracing#2519). Capping the interest
/// at "sometimes" makes every dispatch ask, which keeps the verdict fresh.
struct AskEveryTime<F>(F);

impl<S, F: Filter<S>> Filter<S> for AskEveryTime<F> {
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        self.0.enabled(meta, cx)
    }
    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        let interest = self.0.callsite_enabled(meta);
        if interest.is_always() {
            tracing::subscriber::Interest::sometimes()
        } else {
            interest
        }
    }
    fn event_enabled(&self, event: &tracing::Event<'_>, cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        self.0.event_enabled(event, cx)
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_new_span(attrs, id, cx);
    }
    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_record(id, values, cx);
    }
    fn on_enter(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_enter(id, cx);
    }
    fn on_exit(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_exit(id, cx);
    }
    fn on_close(&self, id: tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_close(id, cx);
    }
}

/// The trace id of a request's span, kept in the span's extensions for the log layers (stdout's
/// JSON lines and the console) to write on the lines logged inside it, as 32 hex digits.
///
/// Not a span field: a recorded field went through every layer (and became an attribute of the
/// exported span, which carries its trace id anyway), 3% of a cached read's instructions; and
/// only a request that logs something needs it as text.
pub(crate) struct RequestTraceId(pub(crate) opentelemetry::trace::TraceId);

/// Keeps `trace_id` with `span` for the log layers; nothing happens under a subscriber other
/// than [`tracing_subscriber::Registry`] with layers, or when `span` is disabled.
pub(crate) fn attach_trace_id(span: &tracing::Span, trace_id: opentelemetry::trace::TraceId) {
    use tracing_subscriber::registry::{LookupSpan as _, SpanData as _};
    span.with_subscriber(|(id, dispatch)| {
        if let Some(data) = dispatch
            .downcast_ref::<tracing_subscriber::Registry>()
            .and_then(|registry| registry.span_data(id))
        {
            data.extensions_mut().insert(RequestTraceId(trace_id));
        }
    });
}

/// Span fields as recorded so far, kept in the span's extensions by [`JsonLog`].
struct SpanFields(Vec<(&'static str, serde_json::Value)>);

/// Collects fields, skipping empty ones and those only the trace exporter reads.
pub(crate) struct FieldVisitor<'a>(pub(crate) &'a mut Vec<(&'static str, serde_json::Value)>);

impl FieldVisitor<'_> {
    fn put(&mut self, name: &'static str, value: serde_json::Value) {
        if name.starts_with("otel.") || matches!(&value, serde_json::Value::String(s) if s.is_empty()) {
            return;
        }
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field.name(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.put(field.name(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.put(field.name(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.put(field.name(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.put(field.name(), value.into());
    }
    fn record_error(&mut self, field: &tracing::field::Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field.name(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field.name(), format!("{value:?}").into());
    }
}

/// The JSON log format (see the module documentation): one flat object a line.
pub struct JsonLog<W> {
    make_writer: W,
}

impl<W> JsonLog<W>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }

    /// The line for one event (with its trailing newline).
    fn line<S>(&self, event: &tracing::Event<'_>, ctx: &tracing_subscriber::layer::Context<'_, S>) -> Vec<u8>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use serde_json::Value;

        let meta = event.metadata();
        let mut fields = Vec::new();
        event.record(&mut FieldVisitor(&mut fields));
        let mut target = Value::from(meta.target());
        let mut message = Value::from("");
        let mut own = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            match name {
                "message" => message = value,
                // Lines bridged from the `log` crate name their origin in fields.
                "log.target" => target = value,
                n if n.starts_with("log.") => {}
                _ => own.push((name, value)),
            }
        }
        let mut spans: Vec<(&'static str, Value)> = Vec::new();
        let mut innermost = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                innermost = Some(span.name());
                let extensions = span.extensions();
                let mut merge = FieldVisitor(&mut spans);
                if let Some(recorded) = extensions.get::<SpanFields>() {
                    for (name, value) in &recorded.0 {
                        merge.put(name, value.clone());
                    }
                }
                if let Some(trace_id) = extensions.get::<RequestTraceId>() {
                    merge.put("trace_id", trace_id.0.to_string().into());
                }
            }
        }
        let timestamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        let field = |out: &mut Vec<u8>, name: &str, value: &Value| {
            if out.len() > 1 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *out, name);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, value);
        };
        field(&mut out, "timestamp", &Value::from(timestamp));
        field(&mut out, "level", &Value::from(meta.level().as_str()));
        field(&mut out, "target", &target);
        field(&mut out, "message", &message);
        for (name, value) in &own {
            field(&mut out, name, value);
        }
        for (name, value) in &spans {
            if !own.iter().any(|(n, _)| n == name) {
                field(&mut out, name, value);
            }
        }
        if let Some(name) = innermost {
            field(&mut out, "span", &Value::from(name));
        }
        out.extend_from_slice(b"}\n");
        out
    }
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLog<W>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            let mut fields = Vec::new();
            attrs.record(&mut FieldVisitor(&mut fields));
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut FieldVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        use std::io::Write as _;
        let line = self.line(event, &ctx);
        let _ = self.make_writer.make_writer_for(event.metadata()).write_all(&line);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::JsonLog;

    #[test]
    fn sql_statements_are_logged_only_when_the_filter_may_show_debug() {
        let hint = |directives: &str| tracing_subscriber::EnvFilter::new(directives).max_level_hint();
        let debug = tracing_subscriber::filter::LevelFilter::DEBUG;
        assert!(!super::may_show(hint("warn"), debug));
        assert!(!super::may_show(hint("info,sqlx=warn"), debug));
        assert!(super::may_show(hint("warn,sqlx::query=debug"), debug));
        assert!(super::may_show(hint("trace"), debug));
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn a_line_carries_each_span_field_once_and_no_empty_ones() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(JsonLog::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "http.request",
                otel.kind = "server",
                request_id = "r-1",
                http.route = tracing::field::Empty,
                note = "",
            );
            let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
            super::attach_trace_id(
                &outer,
                opentelemetry::trace::TraceId::from_hex(trace_id).expect("a trace id"),
            );
            let _outer = outer.enter();
            let inner = tracing::info_span!("db", request_id = "r-1", statement = "SELECT 1");
            let _inner = inner.enter();
            tracing::info!(status = 200, "GET / -> {}", 200);
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["message"], "GET / -> 200");
        assert_eq!(line["status"], 200);
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["statement"], "SELECT 1");
        assert_eq!(line["span"], "db");
        assert_eq!(text.matches("\"request_id\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"trace_id\"").count(), 1, "{text}");
        for absent in ["otel.kind", "http.route", "note", "spans"] {
            assert!(line.get(absent).is_none(), "{absent} in {text}");
        }
    }
}
