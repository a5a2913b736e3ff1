//! The handle every caller drives runs through: the store, the executor and the options its
//! runs get, set up once (by `baton run`, the server's runner, `baton backfill`) rather than
//! passed along at every call.

use std::sync::Arc;

use baton_core::ids::RunId;
use baton_core::state::RunState;
use baton_store::Store;
use tokio::sync::{mpsc, watch};

use crate::Result;
use crate::dispatcher::{Options, Progress, Stop};
use crate::executor::Executor;

#[derive(Debug, Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    executor: Arc<dyn Executor>,
    opts: Options,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, executor: Arc<dyn Executor>, opts: Options) -> Self {
        Self {
            store,
            executor,
            opts,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.executor
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The same engine with other options (a server's runner adds its observers and child
    /// runner to what it was given).
    #[must_use]
    pub fn with_options(&self, opts: Options) -> Self {
        Self {
            store: Arc::clone(&self.store),
            executor: Arc::clone(&self.executor),
            opts,
        }
    }

    /// Drives `run` to a final state, or until `stop` says otherwise. Fails with
    /// [`crate::Error::Leased`] when a live process holds the run.
    pub async fn execute(
        &self,
        run: &RunId,
        stop: watch::Receiver<Option<Stop>>,
    ) -> Result<RunState> {
        crate::dispatcher::execute(self, run, None, stop).await
    }

    /// [`Engine::execute`], telling `progress` of every change worth showing a person.
    pub async fn execute_reporting(
        &self,
        run: &RunId,
        progress: mpsc::UnboundedSender<Progress>,
        stop: watch::Receiver<Option<Stop>>,
    ) -> Result<RunState> {
        crate::dispatcher::execute(self, run, Some(progress), stop).await
    }

    /// [`Engine::execute`], waiting out the lease of a run another process holds (see
    /// [`crate::patient`]).
    pub async fn execute_when_free(
        &self,
        run: &RunId,
        stop: watch::Receiver<Option<Stop>>,
    ) -> Result<RunState> {
        crate::patient::execute_when_free(self, run, stop).await
    }
}
