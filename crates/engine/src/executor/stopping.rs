//! Why the control plane stops an attempt whose process it does not own (a container, a
//! Kubernetes Job), and when: the attempt's own timeout or a cancel, whichever comes first.

use std::time::Duration;

use tokio::sync::oneshot;

use super::Outcome;

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
