//! Artifacts: files one task leaves for another that need not share its disk.
//!
//! After a successful attempt the files matching its `artifacts.upload` patterns are hashed
//! and stored, content-addressed (`sha256/AB/ABCDEF…`), in the [`ArtifactStore`]: a directory
//! under the home, or S3-compatible object storage. Their manifest (path, digest, size,
//! execute bit) is committed with the success. A task naming the uploader under
//! `artifacts.download` gets every file placed at its relative path in its working directory
//! before it starts: here by [`stage`], on a worker by the worker itself, from the control
//! plane's store. A file is verified against its digest on the way in and out.

mod collect;
mod error;
mod mover;
mod stage;
mod store;

pub use collect::{Collected, collect, digest_file};
pub use error::{ArtifactError, Op};
pub use mover::{Mover, Moving};
pub use stage::{destination, download, file_stream, upload, write_verified};
pub use store::{ArtifactStore, LazyStore, S3Settings, StoreConfig};

use baton_store::ArtifactFile;

/// Failed uploads and downloads, by store kind (`dir`, `s3`) and `op`.
pub const ARTIFACT_ERRORS_TOTAL: &str = "baton_artifact_errors_total";

/// What an attempt moves: files to place before it starts, patterns to keep after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactPlan {
    /// From the uploads of the upstream tasks it names, one per path.
    pub download: Vec<ArtifactFile>,
    /// Its `artifacts.upload` patterns.
    pub upload: Vec<String>,
}

impl ArtifactPlan {
    pub fn is_empty(&self) -> bool {
        self.download.is_empty() && self.upload.is_empty()
    }
}

/// What an attempt uploaded, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifacts {
    /// [`ArtifactStore::label`] of the store holding them.
    pub store: String,
    pub files: Vec<ArtifactFile>,
}

/// Counts a failure in [`ARTIFACT_ERRORS_TOTAL`].
pub fn count_error(store_kind: &'static str, op: Op) {
    metrics::describe_counter!(
        ARTIFACT_ERRORS_TOTAL,
        "Artifact uploads and downloads that failed (a missing, unreadable or corrupt file, an \
         unreachable store)."
    );
    metrics::counter!(ARTIFACT_ERRORS_TOTAL, "store" => store_kind, "op" => op.as_str())
        .increment(1);
}
