//! The executors of one engine, each attempt handed to the one for its kind of work: a
//! process to the local executor, a request to the HTTP one. Workers, containers and
//! Kubernetes Jobs join them the same way.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use baton_core::ids::RunId;
use tokio::sync::mpsc;

use super::{AttemptSpec, CancelHandle, Executor, Finished, HttpExecutor, Leftover, Unseen, Work};

#[derive(Debug, Clone)]
pub struct Executors {
    processes: Arc<dyn Executor>,
    http: HttpExecutor,
}

impl Executors {
    /// `processes` runs processes (the local executor); requests go to `http`.
    pub fn new(processes: Arc<dyn Executor>, http: HttpExecutor) -> Self {
        Self { processes, http }
    }
}

impl Executor for Executors {
    fn start(&self, spec: AttemptSpec, done: mpsc::UnboundedSender<Finished>) -> CancelHandle {
        match spec.work {
            Work::Process { .. } => self.processes.start(spec, done),
            Work::Http(_) => self.http.start(spec, done),
        }
    }

    // A request leaves nothing behind to stop, and no record of how it ended: an HTTP
    // attempt a crash interrupted is tried again, with the same idempotency key.
    fn stop_leftovers(
        &self,
        run: &RunId,
        attempts: Vec<Leftover>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.processes.stop_leftovers(run, attempts)
    }

    fn recover(
        &self,
        attempts: Vec<Unseen>,
    ) -> Pin<Box<dyn Future<Output = Vec<Option<Finished>>> + Send + 'static>> {
        self.processes.recover(attempts)
    }
}
