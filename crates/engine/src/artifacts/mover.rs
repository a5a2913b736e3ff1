//! Who moves an attempt's files: the artifact store itself, on the control plane's host, or
//! a worker through the control plane's worker API. The staging around an attempt is the
//! same either way (see `executor::staged`).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use baton_store::ArtifactFile;

use super::{ArtifactError, ArtifactStore};

pub type Moving<'a, T> = Pin<Box<dyn Future<Output = Result<T, ArtifactError>> + Send + 'a>>;

pub trait Mover: Send + Sync + std::fmt::Debug + 'static {
    /// Places `files` under `cwd`, each at its path.
    fn download<'a>(&'a self, cwd: &'a Path, files: &'a [ArtifactFile]) -> Moving<'a, ()>;
    /// Stores the files under `cwd` that `patterns` match; their manifest.
    fn upload<'a>(&'a self, cwd: &'a Path, patterns: &'a [String])
    -> Moving<'a, Vec<ArtifactFile>>;
    /// Where the files go, as recorded with them.
    fn label(&self) -> String;
    /// `dir`, `s3` or `server`, for the error metric.
    fn kind(&self) -> &'static str;
}

impl Mover for ArtifactStore {
    fn download<'a>(&'a self, cwd: &'a Path, files: &'a [ArtifactFile]) -> Moving<'a, ()> {
        Box::pin(super::download(self, cwd, files))
    }

    fn upload<'a>(
        &'a self,
        cwd: &'a Path,
        patterns: &'a [String],
    ) -> Moving<'a, Vec<ArtifactFile>> {
        Box::pin(super::upload(self, cwd, patterns))
    }

    fn label(&self) -> String {
        ArtifactStore::label(self).to_owned()
    }

    fn kind(&self) -> &'static str {
        ArtifactStore::kind(self)
    }
}
