//! A pipeline version as the API shows it.

use baton_store::VersionRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A recorded version of a pipeline definition, without its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Version {
    /// The content hash of the definition.
    pub hash: String,
    /// The file it was read from.
    pub path: Option<String>,
    pub created_at: i64,
}

impl From<VersionRecord> for Version {
    fn from(v: VersionRecord) -> Self {
        Self {
            hash: v.hash,
            path: v.path,
            created_at: v.created_at,
        }
    }
}
