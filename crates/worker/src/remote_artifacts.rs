//! A worker's artifacts move through the control plane's worker API, under the lease of the
//! attempt that moves them: the worker needs no credentials of the artifact store.

use std::path::Path;

use baton_core::ids::WorkerId;
use baton_engine::artifacts::{self, ArtifactError, Mover, Moving, Op};
use baton_store::ArtifactFile;
use futures_util::TryStreamExt;

use crate::client::Client;

#[derive(Debug)]
pub(crate) struct RemoteArtifacts {
    pub(crate) client: Client,
    pub(crate) worker: WorkerId,
    pub(crate) epoch: u64,
}

impl RemoteArtifacts {
    async fn fetch_all(&self, cwd: &Path, files: &[ArtifactFile]) -> Result<(), ArtifactError> {
        for f in files {
            let dest = artifacts::destination(cwd, &f.path)?;
            let resp = self
                .client
                .fetch_artifact(&self.worker, self.epoch, &f.digest)
                .await
                .map_err(|e| transfer(Op::Download, &f.path, &e))?;
            let body = resp.bytes_stream().map_err(|e| e.to_string());
            artifacts::write_verified(f, &dest, body).await?;
        }
        Ok(())
    }

    async fn send_all(
        &self,
        cwd: &Path,
        patterns: &[String],
    ) -> Result<Vec<ArtifactFile>, ArtifactError> {
        let (dir, patterns) = (cwd.to_owned(), patterns.to_vec());
        let found = tokio::task::spawn_blocking(move || artifacts::collect(&dir, &patterns))
            .await
            .map_err(|e| ArtifactError::Io {
                what: "read",
                path: cwd.to_owned(),
                source: std::io::Error::other(e),
            })??;
        for c in &found {
            let f = tokio::fs::File::open(&c.abs)
                .await
                .map_err(|source| ArtifactError::Io {
                    what: "read",
                    path: c.abs.clone(),
                    source,
                })?;
            let body = reqwest::Body::wrap_stream(artifacts::file_stream(f));
            self.client
                .upload_artifact(&self.worker, self.epoch, &c.file.path, &c.file.digest, body)
                .await
                .map_err(|e| transfer(Op::Upload, &c.file.path, &e))?;
        }
        Ok(found.into_iter().map(|c| c.file).collect())
    }
}

fn transfer(op: Op, path: &str, e: &dyn std::fmt::Display) -> ArtifactError {
    ArtifactError::Transfer {
        op,
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

impl Mover for RemoteArtifacts {
    fn download<'a>(&'a self, cwd: &'a Path, files: &'a [ArtifactFile]) -> Moving<'a, ()> {
        Box::pin(self.fetch_all(cwd, files))
    }

    fn upload<'a>(
        &'a self,
        cwd: &'a Path,
        patterns: &'a [String],
    ) -> Moving<'a, Vec<ArtifactFile>> {
        Box::pin(self.send_all(cwd, patterns))
    }

    fn label(&self) -> String {
        // The server records its own store's name with what it accepts.
        "server".into()
    }

    fn kind(&self) -> &'static str {
        "server"
    }
}
