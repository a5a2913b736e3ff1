//! The export side: an OTLP exporter fed in batches by a task of its own.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use tokio::sync::{mpsc, oneshot};

use super::observer::TraceObserver;
use super::settings::{Protocol, Resolved, TraceError, TraceSettings, resolve};

/// Spans waiting for export; beyond this the observer drops new ones rather than grow.
const QUEUE: usize = 4096;
/// Spans per export request.
const BATCH: usize = 512;
/// How long a span may wait for more to share its request.
const DELAY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) enum Msg {
    Span(Box<SpanData>),
    /// Export what is queued, shut the exporter down, then answer.
    Shutdown(oneshot::Sender<()>),
}

/// Traces of this process's runs, while it lives: the observer to add to runners and
/// dispatchers, and the exporter task behind it.
#[derive(Debug)]
pub struct Traces {
    observer: Arc<TraceObserver>,
    tx: mpsc::Sender<Msg>,
    task: tokio::task::JoinHandle<()>,
}

impl Traces {
    /// Starts exporting if an endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` and the
    /// other standard variables, else `file`); `None` when traces are off. Must be called
    /// within a Tokio runtime, which then runs the exporter.
    pub fn start(file: &TraceSettings) -> Result<Option<Self>, TraceError> {
        let Some(settings) = resolve(file, |k| std::env::var(k).ok())? else {
            return Ok(None);
        };
        let exporter = exporter(&settings)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(export(rx, exporter));
        tracing::debug!(protocol = %settings.protocol, "exporting traces over OTLP");
        Ok(Some(Self {
            observer: Arc::new(TraceObserver::new(tx.clone())),
            tx,
            task,
        }))
    }

    pub fn observer(&self) -> Arc<dyn baton_engine::Observer> {
        self.observer.clone()
    }

    /// Exports what is queued and stops, waiting at most `timeout` (a collector that does not
    /// answer must not hold the process up).
    pub async fn shutdown(self, timeout: Duration) {
        let (done, answered) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(done)).await.is_ok()
            && tokio::time::timeout(timeout, answered).await.is_err()
        {
            tracing::warn!(
                "spans not exported within {}s of stopping; they are lost",
                timeout.as_secs()
            );
        }
        self.task.abort();
    }
}

fn exporter(settings: &Resolved) -> Result<opentelemetry_otlp::SpanExporter, TraceError> {
    let built = match settings.protocol {
        Protocol::HttpProtobuf => {
            // reqwest is built with rustls but leaves the choice of crypto to the binary.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(reqwest::Client::new())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
            if let Some(e) = &settings.endpoint {
                b = b.with_endpoint(e.clone());
            }
            b.build()
        }
        Protocol::Grpc => {
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_protocol(opentelemetry_otlp::Protocol::Grpc);
            if let Some(e) = &settings.endpoint {
                b = b.with_endpoint(e.clone());
            }
            b.build()
        }
    };
    let mut exporter = built.map_err(|source| TraceError::Exporter {
        protocol: settings.protocol,
        source,
    })?;
    exporter.set_resource(
        &Resource::builder()
            .with_service_name(settings.service_name.clone())
            .build(),
    );
    Ok(exporter)
}

/// The exporter's task: gathers spans into batches and sends one when it is full or has waited
/// `DELAY`. A failed export is logged once until one succeeds again; the spans are dropped
/// (the run never waits on its traces).
async fn export(mut rx: mpsc::Receiver<Msg>, exporter: opentelemetry_otlp::SpanExporter) {
    let mut batch: Vec<SpanData> = Vec::new();
    let mut failing = false;
    let mut flush = async |batch: &mut Vec<SpanData>| {
        if batch.is_empty() {
            return;
        }
        let spans = std::mem::take(batch);
        let n = spans.len();
        match exporter.export(spans).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("trace export works again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, spans = n, "cannot export spans; more failures are not logged until one succeeds");
            }
            Err(_) => {}
        }
    };
    let mut tick = tokio::time::interval(DELAY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Span(span)) => {
                    batch.push(*span);
                    if batch.len() >= BATCH {
                        flush(&mut batch).await;
                    }
                }
                Some(Msg::Shutdown(done)) => {
                    flush(&mut batch).await;
                    let _ = exporter.shutdown();
                    let _ = done.send(());
                    return;
                }
                None => {
                    flush(&mut batch).await;
                    return;
                }
            },
            _ = tick.tick() => flush(&mut batch).await,
        }
    }
}
