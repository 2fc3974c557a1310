//! A small OTLP/gRPC collector for tests: a real tonic server implementing
//! the OpenTelemetry trace and metrics services on `127.0.0.1:0`, keeping
//! what it receives for the test to read.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{MetricsService, MetricsServiceServer};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// One received span with the resource it came from.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub resource: Vec<KeyValue>,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }

    pub fn resource_attribute(&self, key: &str) -> Option<String> {
        attribute(&self.resource, key)
    }
}

/// A string, integer or boolean attribute as text.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|pair| pair.key == key)?.value.as_ref()?;
    match value {
        AnyValue { value: Some(any_value::Value::StringValue(text)) } => Some(text.clone()),
        AnyValue { value: Some(any_value::Value::IntValue(number)) } => Some(number.to_string()),
        AnyValue { value: Some(any_value::Value::BoolValue(flag)) } => Some(flag.to_string()),
        AnyValue { value: Some(any_value::Value::DoubleValue(number)) } => Some(number.to_string()),
        _ => None,
    }
}

#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    metric_names: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(&self, request: Request<ExportTraceServiceRequest>) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.map(|resource| resource.attributes).unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    spans.push(ReceivedSpan { resource: resource.clone(), span });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut names = self.metric_names.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for resource_metrics in request.into_inner().resource_metrics {
            for scope_metrics in resource_metrics.scope_metrics {
                names.extend(scope_metrics.metrics.into_iter().map(|metric| metric.name));
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

/// A running collector; dropping it stops the server.
pub struct Collector {
    address: SocketAddr,
    received: Received,
    stop: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Collector {
    pub async fn start() -> anyhow::Result<Collector> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot bind 127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let received = Received::default();
        let (stop, mut stopped) = watch::channel(false);
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(received.clone()))
            .add_service(MetricsServiceServer::new(received.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
        Ok(Collector { address, received, stop, server: Some(tokio::spawn(server)) })
    }

    /// `http://127.0.0.1:PORT`, for `--otlp-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.received.metric_names.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Stops the server and joins it, so that its errors surface.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            server.await.context("the collector panicked")?.context("the collector failed")?;
        }
        Ok(())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
