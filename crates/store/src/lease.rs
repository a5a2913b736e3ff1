//! Run ownership as the store sees it: a lease names its holder and an epoch, the fencing
//! token that tells one tenure of a holder from the next.

use baton_core::ids::LeaseOwner;

/// How many times a run's lease has been acquired by a new holder. Only grows, so a write
/// naming an older epoch comes from someone who lost the run since.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct LeaseEpoch(pub i64);

impl std::fmt::Display for LeaseEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A run's lease as its holder got it: what every write of the holder names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: LeaseOwner,
    pub epoch: LeaseEpoch,
}

/// Whose write [`crate::Store::apply`] makes.
#[derive(Debug, Clone, Copy)]
pub enum Fence<'a> {
    /// The run's owner's: refused with [`crate::Error::LeaseLost`], in the same transaction,
    /// unless this is still the run's lease.
    Lease(&'a Lease),
    /// Not an owner's: reopening a finished run for a retry, which nobody drives. Never for
    /// a dispatcher.
    Unfenced,
}

/// A run [`crate::Store::claim_orphans`] took: as it was before (`lease_owner` the previous
/// holder), and the lease it now has.
#[derive(Debug, Clone)]
pub struct TakenRun {
    pub run: crate::RunRecord,
    pub lease: Lease,
}
