//! The executor side of the hub: an attempt for workers is queued there, and its outcome comes
//! back when a worker reports it or the hub gives the attempt up.

use std::time::Duration;

use baton_core::model::RunsOn;
use tokio::sync::mpsc;

use super::hub::WorkerHub;
use crate::executor::{AttemptSpec, CancelHandle, Executor, Finished, Outcome, Outputs, Work};

/// Runs attempts on `baton worker` agents through a [`WorkerHub`].
#[derive(Debug, Clone)]
pub struct WorkerExecutor {
    hub: WorkerHub,
    /// Labels every attempt of this instance asks for (`[executors.NAME] labels`), besides the
    /// task's own `runs_on`.
    labels: Vec<String>,
}

impl WorkerExecutor {
    pub fn new(hub: WorkerHub, labels: Vec<String>) -> Self {
        Self { hub, labels }
    }

    pub fn hub(&self) -> &WorkerHub {
        &self.hub
    }
}

impl Executor for WorkerExecutor {
    fn start(&self, spec: AttemptSpec, done: mpsc::UnboundedSender<Finished>) -> CancelHandle {
        if matches!(spec.work, Work::Http(_)) {
            let _ = done.send(Finished {
                key: spec.key,
                attempt: spec.attempt,
                outcome: Outcome::Refused(
                    "an `http` step is a request the control plane makes, not work for a worker"
                        .into(),
                ),
                rusage: None,
                outputs: Outputs::default(),
                artifacts: None,
            });
            return CancelHandle::new().0;
        }
        let mut labels = self.labels.clone();
        let mut wait = RunsOn::DEFAULT_WAIT.as_std();
        if let Some(r) = &spec.runs_on {
            for l in &r.labels {
                if !labels.contains(l) {
                    labels.push(l.clone());
                }
            }
            wait = r.wait.as_std();
        }
        let (handle, cancelled) = CancelHandle::new();
        let attempt = self
            .hub
            .enqueue(spec, done, labels, wait.max(Duration::from_millis(1)));
        let hub = self.hub.clone();
        // Ends with the handle: a handle dropped without a cancel (the attempt ended) is no
        // cancel.
        tokio::spawn(async move {
            if cancelled.await.is_ok() {
                hub.cancel(&attempt);
            }
        });
        handle
    }
}
