//! Logs and traces. Log lines are JSON (or human-readable on a terminal) and, inside a request,
//! carry its `request_id` and `trace_id`. Traces follow W3C `traceparent`; spans are exported over
//! OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
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

/// Installs the global subscriber. Call once, early, from the binary.
pub fn init(service: &str, cfg: &PlatformConfig) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(format!("emporium-{service}"))
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    let mut export_error = None;
    if let Some(endpoint) = &cfg.otlp_endpoint {
        let traces_endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(traces_endpoint)
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => export_error = Some(e.to_string()),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer("emporium");
    opentelemetry::global::set_tracer_provider(provider.clone());

    let filter = EnvFilter::try_new(&cfg.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match cfg.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            // The whole span list, so lines inside nested spans (a DB call) still carry the
            // request's `request_id` and `trace_id`.
            .with_span_list(true)
            .boxed()
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
    let _ = tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(trace_filter),
        )
        .try_init();
    if let Some(e) = export_error {
        tracing::warn!(error = %e, "OTLP trace export disabled: exporter could not be built");
    } else if let Some(endpoint) = &cfg.otlp_endpoint {
        tracing::info!(%endpoint, "exporting traces over OTLP/HTTP");
    }
    TelemetryGuard { provider }
}
