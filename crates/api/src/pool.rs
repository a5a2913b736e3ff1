//! A pool as the API shows it.

use baton_store::PoolRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A named number of slots that the tasks naming it share, across every run and every
/// process on the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pool {
    pub name: String,
    /// Tasks of the pool running at once at most; 0 pauses the pool.
    pub slots: u32,
    pub description: Option<String>,
    /// Slots held now by running tasks (of runs whose owner is alive).
    pub used: u32,
    /// Tasks ready to run and waiting for a slot now.
    pub waiting: u32,
}

impl From<PoolRecord> for Pool {
    fn from(p: PoolRecord) -> Self {
        Self {
            name: p.name,
            slots: p.slots,
            description: p.description,
            used: p.used,
            waiting: p.waiting,
        }
    }
}
