//! Logging: structured (`json`) or human (`pretty`) lines on stdout, filtered by `ODOCK_LOG`.
//! Bodies, keys and auth headers are never logged.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// How log lines are written: `pretty` (human) or `json` (one object per line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable compact lines (the default).
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: `log` is an `EnvFilter` directive (`ODOCK_LOG`). Safe to call
/// more than once (later calls are ignored).
pub fn init(log: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// OTLP transport of the trace exporter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtlpProtocol {
    /// `http/protobuf` (the default; port 4318, path `/v1/traces`).
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// `grpc` (port 4317).
    #[serde(rename = "grpc")]
    Grpc,
}

impl std::str::FromStr for OtlpProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http/protobuf" | "http" => Ok(Self::HttpProtobuf),
            "grpc" => Ok(Self::Grpc),
            other => Err(format!("`{other}` (expected grpc or http/protobuf)")),
        }
    }
}

/// Trace export settings (see [`Config`](crate::Config)): off while `endpoint` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// Where spans go: the full traces URL for HTTP (`…/v1/traces`), the collector for gRPC.
    pub endpoint: Option<String>,
    /// OTLP transport.
    pub protocol: OtlpProtocol,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of new traces sampled (0..=1); a client's sampled flag is followed.
    pub sample_ratio: f64,
}

impl Default for TraceSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: OtlpProtocol::HttpProtobuf,
            service_name: "odock".to_owned(),
            sample_ratio: 1.0,
        }
    }
}

/// The traces URL for an OTLP/HTTP base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` semantics: the
/// signal path is appended).
pub fn http_traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// The running trace exporter: keeps the provider alive; [`TraceExport::shutdown`] flushes it.
#[derive(Debug, Clone)]
pub struct TraceExport {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl TraceExport {
    /// Exports every finished span now (blocks a blocking-pool thread, not the caller).
    pub async fn flush(&self) {
        let provider = self.provider.clone();
        let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(%error, "trace export flush failed");
        }
    }

    /// Flushes and stops the exporter.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = stopped {
            tracing::warn!(%error, "trace export shutdown failed");
        }
    }
}

/// Starts the OTLP trace exporter when `settings` name an endpoint. Must run inside the tokio
/// runtime the exports will use.
pub fn start_trace_export(
    settings: &TraceSettings,
) -> Result<Option<(odock_core::Tracing, TraceExport)>, String> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

    let Some(endpoint) = &settings.endpoint else {
        return Ok(None);
    };
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| "trace export needs a tokio runtime".to_owned())?;
    let timeout = std::time::Duration::from_secs(10);
    let exporter = match settings.protocol {
        OtlpProtocol::HttpProtobuf => {
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| format!("OTLP HTTP client: {e}"))?;
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(OtlpHttpClient(client))
                .with_endpoint(endpoint.clone())
                .with_timeout(timeout)
                .build()
        }
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(timeout)
            .build(),
    }
    .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
    let ratio = settings.sample_ratio.clamp(0.0, 1.0);
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(OnRuntime {
            inner: exporter,
            handle,
        })
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("odock");
    tracing::info!(endpoint = %endpoint, protocol = ?settings.protocol, "exporting traces over OTLP");
    Ok(Some((
        odock_core::Tracing::new(tracer),
        TraceExport { provider },
    )))
}

/// The workspace's reqwest client as the OTLP/HTTP transport (the exporter's own would bring a
/// second reqwest).
#[derive(Debug)]
struct OtlpHttpClient(reqwest::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let mut answer = http::Response::new(bytes);
        *answer.status_mut() = status;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

/// Runs an exporter's futures inside the server's tokio runtime: the SDK's batch processor polls
/// them on a thread of its own, where hyper and tonic would otherwise find no reactor.
#[derive(Debug)]
struct OnRuntime<E> {
    inner: E,
    handle: tokio::runtime::Handle,
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for OnRuntime<E>
{
    fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        let handle = self.handle.clone();
        let mut export = Box::pin(self.inner.export(batch));
        futures::future::poll_fn(move |cx| {
            let _entered = handle.enter();
            std::future::Future::poll(export.as_mut(), cx)
        })
    }

    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let _entered = self.handle.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        let _entered = self.handle.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}
