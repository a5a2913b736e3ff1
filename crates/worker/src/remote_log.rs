//! Where a worker's attempt writes its output: the control plane's log store, through the
//! worker API, under the attempt's lease. The engine's log writer batches and caps the output
//! and tries transient failures again, as it does for a local store.

use async_trait::async_trait;
use baton_core::ids::WorkerId;
use baton_store::{AttemptLog, Lease, LogError, LogStore};

use crate::client::{Client, ClientError};

#[derive(Debug)]
pub(crate) struct RemoteLog {
    pub(crate) client: Client,
    pub(crate) worker: WorkerId,
    pub(crate) epoch: u64,
}

#[async_trait]
impl LogStore for RemoteLog {
    fn location(&self, _log: &AttemptLog) -> String {
        format!("{} (lease {})", self.client.server(), self.epoch)
    }

    async fn append(
        &self,
        log: &AttemptLog,
        _lease: Option<&Lease>,
        at: u64,
        bytes: &[u8],
    ) -> Result<(), LogError> {
        match self
            .client
            .append_log(&self.worker, self.epoch, at, bytes)
            .await
        {
            Ok(()) => Ok(()),
            Err(ClientError::Stale(_) | ClientError::UnknownWorker(_)) => Err(LogError::Stale {
                run: log.run.clone(),
                key: log.key.clone(),
                attempt: log.attempt,
            }),
            Err(e) if e.is_transient() => Err(LogError::Unreachable {
                to: self.client.server().to_owned(),
                reason: e.to_string(),
            }),
            Err(e) => Err(LogError::Write {
                path: self.location(log).into(),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    // The log is read where it is kept, on the control plane.
    async fn read(
        &self,
        _log: &AttemptLog,
        _offset: u64,
        _max: usize,
    ) -> Result<Vec<u8>, LogError> {
        Ok(Vec::new())
    }

    async fn len(&self, _log: &AttemptLog) -> Result<u64, LogError> {
        Ok(0)
    }
}
