//! Attempts that move artifacts, on an executor of this host: their downloads are placed in
//! the working directory before the executor starts them, their uploads stored after they
//! succeeded, and only then is the success reported. (A worker does the same on its host.)

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{AttemptSpec, CancelHandle, Executors, Finished, Outcome, Outputs};
use crate::artifacts::{self, Mover, Op, StoredArtifacts};

/// Starts `spec` on the executor of this host that runs it, with its files moved around it
/// by `store`.
pub(super) fn start(
    executors: Executors,
    store: Arc<dyn Mover>,
    spec: AttemptSpec,
    done: mpsc::UnboundedSender<Finished>,
) -> CancelHandle {
    let (handle, cancel) = CancelHandle::new();
    tokio::spawn(async move {
        let finished = run(&executors, store.as_ref(), spec, cancel).await;
        let _ = done.send(finished);
    });
    handle
}

async fn run(
    executors: &Executors,
    store: &dyn Mover,
    spec: AttemptSpec,
    mut cancel: oneshot::Receiver<()>,
) -> Finished {
    let (key, attempt) = (spec.key.clone(), spec.attempt);
    let report = |outcome| Finished {
        key: key.clone(),
        attempt,
        outcome,
        rusage: None,
        outputs: Outputs::default(),
        artifacts: None,
    };
    if !spec.artifacts.download.is_empty() {
        let placed = tokio::select! {
            placed = store.download(&spec.cwd, &spec.artifacts.download) => placed,
            _ = &mut cancel => return report(Outcome::Cancelled),
        };
        if let Err(e) = placed {
            artifacts::count_error(store.kind(), Op::Download);
            return report(Outcome::Error(e.to_string()));
        }
    }
    let (cwd, patterns) = (spec.cwd.clone(), spec.artifacts.upload.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut inner = executors.start_here(spec, tx);
    // The cancel is asked for once: a oneshot polled again after it answered panics.
    let mut asked = false;
    let finished = loop {
        tokio::select! {
            f = rx.recv() => break f,
            r = &mut cancel, if !asked => {
                asked = true;
                if r.is_ok() {
                    inner.cancel();
                } else {
                    // The handle was dropped: so is the inner one, as if it had been ours.
                    inner = CancelHandle::new().0;
                }
            }
        }
    };
    let Some(mut f) = finished else {
        return report(Outcome::Error("the executor ended without a report".into()));
    };
    let succeeded = f.outcome
        == Outcome::Exited {
            exit_code: Some(0),
            signal: None,
        };
    if succeeded && !patterns.is_empty() {
        match store.upload(&cwd, &patterns).await {
            Ok(files) => {
                f.artifacts = Some(StoredArtifacts {
                    store: store.label(),
                    files,
                });
            }
            Err(e) => {
                artifacts::count_error(store.kind(), Op::Upload);
                f.outcome = Outcome::Error(e.to_string());
            }
        }
    }
    f
}
