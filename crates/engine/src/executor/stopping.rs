//! Attempts whose process baton does not own (a container, a Kubernetes Job): each driven by
//! a task of its own, and stopped by the control plane at the attempt's own timeout or a
//! cancel, whichever comes first.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{AttemptSpec, CancelHandle, ContainerRun, Finished, Outcome, Outputs, Work};

/// Drives the attempt `drive` makes of its cancel in a task of its own, its report sent to
/// `done`.
pub(super) fn spawn_attempt<F, Fut>(done: mpsc::UnboundedSender<Finished>, drive: F) -> CancelHandle
where
    F: FnOnce(oneshot::Receiver<()>) -> Fut,
    Fut: Future<Output = Finished> + Send + 'static,
{
    let (handle, cancel) = CancelHandle::new();
    let attempt = drive(cancel);
    tokio::spawn(async move {
        let _ = done.send(attempt.await);
    });
    handle
}

/// The container `spec` runs, or the report refusing it for `executor`, which runs nothing
/// else.
pub(super) fn container_of<'a>(
    spec: &'a AttemptSpec,
    executor: &str,
) -> Result<&'a ContainerRun, Box<Finished>> {
    match &spec.work {
        Work::Container(c) => Ok(c),
        _ => Err(Box::new(Finished::of(
            spec,
            Outcome::Refused(format!("the {executor} executor runs containers only")),
            Outputs::default(),
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    TimedOut,
    Cancelled,
}

impl Stop {
    pub(super) fn outcome(self) -> Outcome {
        match self {
            Self::TimedOut => Outcome::TimedOut,
            Self::Cancelled => Outcome::Cancelled,
        }
    }
}

/// Resolves when the attempt must stop: `timeout` after it started, or at a cancel.
pub(super) async fn stop_when(timeout: Option<Duration>, cancel: oneshot::Receiver<()>) -> Stop {
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = deadline => Stop::TimedOut,
        _ = cancel => Stop::Cancelled,
    }
}
