//! Outbound webhooks: one queue and one way of POSTing JSON, shared by notifications and the
//! HTTP lineage transport.
//!
//! Observers must return at once, so [`Delivery::send`] only pushes onto a bounded queue; a task
//! drains it and sends each message on a task of its own, with a per-request timeout and
//! retries (exponential backoff with full jitter, the same math as task retries). A full queue
//! drops the message. Nothing here can fail a run: every outcome is logged and counted.

use std::sync::Arc;
use std::time::Duration;

use baton_core::model::RetryPolicy;
use baton_core::spec::{Backoff, Jitter};
use tokio::sync::{Semaphore, mpsc};

use crate::outbox::{Outbox, Ticket};

/// What a message is, for its counter and its log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Counted in `baton_notifications_total{namespace,pipeline,outcome}`.
    Notification { namespace: String, pipeline: String },
    /// Counted in `baton_lineage_events_total{outcome}`.
    Lineage,
}

/// One POST to make.
#[derive(Debug, Clone)]
pub struct Message {
    pub url: String,
    pub body: serde_json::Value,
    /// Extra headers, e.g. `Authorization`.
    pub headers: Vec<(String, String)>,
    pub kind: Kind,
    /// The run it is about, for log lines.
    pub run: String,
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Attempts per message, the first included.
    pub attempts: u32,
    /// Delay before the first retry; doubles after each, up to `max_delay`, fully jittered.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Time limit of one request.
    pub timeout: Duration,
    /// Messages waiting to be sent before new ones are dropped.
    pub capacity: usize,
    /// Messages being sent (and retried) at once.
    pub concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            capacity: 1024,
            concurrency: 16,
        }
    }
}

pub const NOTIFICATIONS_TOTAL: &str = "baton_notifications_total";
pub const LINEAGE_EVENTS_TOTAL: &str = "baton_lineage_events_total";

/// Registers the descriptions of the counters this module and its users increment.
pub fn describe_metrics() {
    metrics::describe_counter!(
        NOTIFICATIONS_TOTAL,
        "Notifications delivered (`outcome=\"sent\"`) or given up on (`outcome=\"failed\"`)."
    );
    metrics::describe_counter!(
        LINEAGE_EVENTS_TOTAL,
        "OpenLineage events delivered (`outcome=\"sent\"`) or given up on (`outcome=\"failed\"`)."
    );
}

/// Counts one outcome of a message.
pub(crate) fn count(kind: &Kind, sent: bool) {
    let outcome = if sent { "sent" } else { "failed" };
    match kind {
        Kind::Notification {
            namespace,
            pipeline,
        } => metrics::counter!(
            NOTIFICATIONS_TOTAL,
            "namespace" => namespace.clone(),
            "pipeline" => pipeline.clone(),
            "outcome" => outcome
        )
        .increment(1),
        Kind::Lineage => {
            metrics::counter!(LINEAGE_EVENTS_TOTAL, "outcome" => outcome).increment(1);
        }
    }
}

/// The sending end of the queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Delivery {
    tx: mpsc::Sender<(Message, Ticket)>,
    outbox: Outbox,
}

/// Why a delivery could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up an HTTP client for webhooks: {0}")]
pub struct SetupError(#[from] reqwest::Error);

impl Delivery {
    /// Starts the task draining the queue; call inside a Tokio runtime.
    ///
    /// The HTTP client is built when the first message arrives, not here: building it reads
    /// and parses every system root certificate, which is most of the start-up of a
    /// `baton run` whose pipeline sends nothing (and most send nothing).
    pub fn start(settings: Settings) -> Result<Self, SetupError> {
        describe_metrics();
        let (tx, mut rx) = mpsc::channel::<(Message, Ticket)>(settings.capacity.max(1));
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let settings = Arc::new(settings);
        tokio::spawn(async move {
            let mut client: Option<reqwest::Client> = None;
            while let Some((msg, ticket)) = rx.recv().await {
                let built = match &client {
                    Some(c) => Ok(c.clone()),
                    None => build_client(&settings),
                };
                let client = match built {
                    Ok(c) => client.insert(c).clone(),
                    Err(e) => {
                        tracing::error!(run = %msg.run, kind = ?msg.kind, url = %redact(&msg.url), "{e}; message dropped");
                        count(&msg.kind, false);
                        drop(ticket);
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    break;
                };
                let settings = Arc::clone(&settings);
                tokio::spawn(async move {
                    let sent = send(&client, &settings, &msg).await;
                    count(&msg.kind, sent);
                    drop(slot);
                    drop(ticket);
                });
            }
        });
        Ok(Self {
            tx,
            outbox: Outbox::default(),
        })
    }

    /// What is queued and not yet delivered or given up on.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Queues a message; never waits. A full queue drops it (logged and counted as failed).
    pub fn send(&self, msg: Message) {
        if let Err(e) = self.tx.try_send((msg, self.outbox.enter())) {
            let (msg, _) = match e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            };
            tracing::warn!(run = %msg.run, kind = ?msg.kind, url = %redact(&msg.url), "webhook queue full: message dropped");
            count(&msg.kind, false);
        }
    }
}

fn build_client(settings: &Settings) -> Result<reqwest::Client, SetupError> {
    // TLS uses ring; installing it again (another client) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Tries one message until it is accepted (any 2xx) or the attempts run out.
async fn send(client: &reqwest::Client, settings: &Settings, msg: &Message) -> bool {
    let policy = RetryPolicy {
        limit: settings.attempts.saturating_sub(1),
        delay: baton_core::duration::Duration::from_millis(
            u64::try_from(settings.first_delay.as_millis()).unwrap_or(u64::MAX),
        ),
        backoff: Backoff::Exponential,
        max_delay: Some(baton_core::duration::Duration::from_millis(
            u64::try_from(settings.max_delay.as_millis()).unwrap_or(u64::MAX),
        )),
        jitter: Jitter::Full,
        on_exit_codes: None,
    };
    let body = serde_json::to_vec(&msg.body).unwrap_or_default();
    let attempts = settings.attempts.max(1);
    for attempt in 1..=attempts {
        let mut req = client
            .post(&msg.url)
            .header("content-type", "application/json")
            .body(body.clone());
        for (k, v) in &msg.headers {
            req = req.header(k, v);
        }
        let why = match req.send().await {
            Ok(resp) if resp.status().is_success() => return true,
            Ok(resp) => format!("status {}", resp.status()),
            Err(e) => e.to_string(),
        };
        if attempt == attempts {
            tracing::warn!(
                run = %msg.run, kind = ?msg.kind, url = %redact(&msg.url), attempts, error = %why,
                "webhook delivery failed; giving up"
            );
            break;
        }
        let delay = policy.delay_before(attempt, rand::random::<f64>());
        tracing::debug!(run = %msg.run, url = %redact(&msg.url), attempt, error = %why, "webhook delivery failed; retrying");
        tokio::time::sleep(delay.as_std()).await;
    }
    false
}

/// A URL without its path and query, which often carry a token (Slack's do).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(invalid url)".into();
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    format!("{scheme}://{host}/…")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redaction_keeps_only_the_host() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact("http://u:p@127.0.0.1:9/x?k=v"),
            "http://127.0.0.1:9/…"
        );
    }
}
