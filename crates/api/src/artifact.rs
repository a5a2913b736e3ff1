//! A file an attempt uploaded (`artifacts.upload`), as the API shows it and as a worker
//! reports or fetches it.

use baton_store::{ArtifactFile, ArtifactRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Attempt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    /// Where it was, and is placed downstream, relative to the working directory.
    pub path: String,
    /// `sha256:` and the hex SHA-256 of its content: its address in the artifact store.
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub executable: bool,
}

impl From<ArtifactFile> for Artifact {
    fn from(f: ArtifactFile) -> Self {
        Self {
            path: f.path,
            digest: f.digest,
            size: f.size,
            executable: f.executable,
        }
    }
}

impl From<Artifact> for ArtifactFile {
    fn from(a: Artifact) -> Self {
        Self {
            path: a.path,
            digest: a.digest,
            size: a.size,
            executable: a.executable,
        }
    }
}

/// Gives each of `attempts` the files it uploaded, from the records of their run.
pub fn attach(attempts: &mut [Attempt], records: Vec<ArtifactRecord>) {
    for r in records {
        if let Some(a) = attempts
            .iter_mut()
            .find(|a| a.key == r.key && a.attempt == r.attempt)
        {
            a.artifacts.push(r.file.into());
        }
    }
}
