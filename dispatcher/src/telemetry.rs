//! Logs and OpenTelemetry for the `dispatcher` binary.
//!
//! - Logs go to stderr, human-readable by default or one JSON object a line
//!   (`--log-format json`) for collectors; levels come from `RUST_LOG` (or
//!   `PINGJI_LOG`, the older name), `info` by default.
//! - With an OTLP endpoint, the dispatcher's spans (RPCs, journal appends,
//!   incidents and offers) are exported over OTLP/gRPC, and so are its
//!   counters and histograms (not the gauges read from the state at
//!   scrape), with `service.name` and `service.version` as resource
//!   attributes. Off by default. Only the dispatcher's own spans at `info`
//!   and above are exported, whatever the log level, so that the exporter's
//!   own gRPC calls never feed back into what it exports.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::warn;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::metrics::Metrics;

/// The service name in exported traces and metrics.
pub const SERVICE_NAME: &str = "pingji-dispatcher";
/// What is exported over OTLP, whatever the log level.
const EXPORT_FILTER: &str = "pingji_dispatcher=info";
/// How often metrics are pushed over OTLP.
const METRICS_EXPORT_EVERY: Duration = Duration::from_secs(15);

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Checks an OTLP/gRPC endpoint: `http://HOST:PORT`.
pub fn validate_otlp_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.starts_with("https://") {
        return Err("https needs TLS, which this build does not have yet (issue #7); use http://HOST:PORT".to_string());
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err(format!("{endpoint:?} is not a URL; use http://HOST:PORT, e.g. http://127.0.0.1:4317"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err(format!("{endpoint:?} has no port; OTLP/gRPC is usually on 4317"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{endpoint:?} needs a host and a port number, e.g. http://127.0.0.1:4317"));
    }
    Ok(())
}

/// What to flush at exit.
#[must_use = "call shutdown at exit to flush what is not exported yet"]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Exports what is still buffered and stops the exporters.
    pub async fn shutdown(self) {
        let Telemetry { tracer_provider, meter_provider } = self;
        // The providers block while flushing, on exports that run on this
        // runtime: flush off its worker threads.
        let flushed = tokio::task::spawn_blocking(move || {
            if let Some(provider) = tracer_provider
                && let Err(error) = provider.shutdown()
            {
                warn!(%error, "cannot flush the last traces");
            }
            if let Some(provider) = meter_provider
                && let Err(error) = provider.shutdown()
            {
                warn!(%error, "cannot flush the last metrics");
            }
        });
        if tokio::time::timeout(Duration::from_secs(10), flushed).await.is_err() {
            warn!("the telemetry exporters did not stop in time");
        }
    }
}

fn log_filter(default: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("PINGJI_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
}

/// Logging as text on stderr, warnings and errors only unless `RUST_LOG`
/// (or `PINGJI_LOG`) says otherwise: for a dispatcher inside another
/// program that talks to a person on the terminal (`drill demo`).
pub fn init_quiet() -> anyhow::Result<()> {
    let fmt_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(log_filter("warn"));
    tracing_subscriber::registry().with(fmt_layer).try_init().context("cannot set up logging")
}

fn resource() -> Resource {
    Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sets up logging and, with `otlp_endpoint`, OTLP export of traces and of
/// `metrics`' counters. Call inside the Tokio runtime.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>, metrics: Option<Arc<Metrics>>) -> anyhow::Result<Telemetry> {
    let fmt_layer = match format {
        // Colours only for a person at a terminal, not in files and collectors.
        LogFormat::Text => {
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed(),
    }
    .with_filter(log_filter("info"));
    let mut telemetry = Telemetry { tracer_provider: None, meter_provider: None };
    let otel_layer = match otlp_endpoint {
        Some(endpoint) => {
            validate_otlp_endpoint(endpoint).map_err(|reason| anyhow::anyhow!("otlp endpoint: {reason}"))?;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .context("cannot set up the OTLP trace exporter")?;
            let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource()).build();
            let tracer = provider.tracer(SERVICE_NAME);
            telemetry.tracer_provider = Some(provider);
            if let Some(metrics) = metrics {
                telemetry.meter_provider = Some(meter_provider(endpoint, metrics)?);
            }
            Some(
                tracing_opentelemetry::layer().with_tracer(tracer).with_filter(tracing_subscriber::EnvFilter::new(EXPORT_FILTER)),
            )
        }
        None => None,
    };
    tracing_subscriber::registry().with(fmt_layer).with(otel_layer).try_init().context("cannot set up logging")?;
    Ok(telemetry)
}

/// Pushes the counters of `metrics` over OTLP every [`METRICS_EXPORT_EVERY`].
fn meter_provider(endpoint: &str, metrics: Arc<Metrics>) -> anyhow::Result<SdkMeterProvider> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .context("cannot set up the OTLP metric exporter")?;
    let reader = PeriodicReader::builder(exporter).with_interval(METRICS_EXPORT_EVERY).build();
    let provider = SdkMeterProvider::builder().with_reader(reader).with_resource(resource()).build();
    let meter = provider.meter(SERVICE_NAME);
    metrics.export_to(&meter);
    for (name, help) in crate::metrics::COUNTERS {
        let source = metrics.clone();
        // Registered with the meter for the provider's lifetime.
        let _counter = meter
            .u64_observable_counter(format!("pingji.{name}"))
            .with_description(*help)
            .with_callback(move |observer| observer.observe(source.counter_total(name), &[]))
            .build();
    }
    let source = metrics.clone();
    let _ready = meter
        .i64_observable_gauge("pingji.ready")
        .with_description("1 while this process serves")
        .with_callback(move |observer| observer.observe(source.ready(), &[]))
        .build();
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_endpoints_are_checked_with_a_reason() {
        assert_eq!(validate_otlp_endpoint("http://127.0.0.1:4317"), Ok(()));
        assert_eq!(validate_otlp_endpoint("http://collector.local:4317/"), Ok(()));
        assert!(validate_otlp_endpoint("127.0.0.1:4317").is_err_and(|reason| reason.contains("not a URL")));
        assert!(validate_otlp_endpoint("http://collector").is_err_and(|reason| reason.contains("no port")));
        assert!(validate_otlp_endpoint("https://collector:4317").is_err_and(|reason| reason.contains("TLS")));
        assert!(validate_otlp_endpoint("http://:4317").is_err_and(|reason| reason.contains("host and a port")));
    }
}
