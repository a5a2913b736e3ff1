//! A backfill as the API shows it.

use baton_core::ids::BackfillId;
use baton_store::BackfillRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One run per schedule tick of `[start, end]`, at most `parallelism` at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Backfill {
    pub id: BackfillId,
    pub namespace: String,
    pub pipeline: String,
    /// The definition every run of the backfill is pinned to.
    pub version: String,
    /// Index of the schedule whose ticks were enumerated.
    pub schedule: u32,
    /// The range as given (RFC 3339 or a date).
    pub start: String,
    pub end: String,
    pub parallelism: u32,
    /// The params every run gets, by name.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// How many runs it created.
    pub runs: u64,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
}

impl From<BackfillRecord> for Backfill {
    fn from(b: BackfillRecord) -> Self {
        Self {
            id: b.id,
            namespace: b.namespace,
            pipeline: b.pipeline,
            version: b.version,
            schedule: b.schedule,
            start: b.start,
            end: b.end,
            parallelism: b.parallelism,
            params: b.params,
            runs: b.runs,
            idempotency_key: b.idempotency_key,
            created_at: b.created_at,
        }
    }
}
