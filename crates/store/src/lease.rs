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

/// The number of a run's owner's commit, counted over the run's life (across owners): each
/// fenced [`crate::Store::apply`] names the one it is, so that one retried after its answer was
/// lost (it landed, and then the connection dropped) is recognised and not written twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct CommitSeq(pub i64);

impl CommitSeq {
    /// The commit after this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl std::fmt::Display for CommitSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A run's lease as its holder got it: what every write of the holder names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: LeaseOwner,
    pub epoch: LeaseEpoch,
    /// The run's last commit when the lease was taken: the holder's first is the next.
    pub commits: CommitSeq,
}

/// Whose write [`crate::Store::apply`] makes.
#[derive(Debug, Clone, Copy)]
pub enum Fence<'a> {
    /// The run's owner's commit number `commit`: refused with [`crate::Error::LeaseLost`], in
    /// the same transaction, unless `lease` is still the run's. When the run's last commit is
    /// already `commit` (a retry of one that landed), nothing is written and the call succeeds.
    Lease { lease: &'a Lease, commit: CommitSeq },
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
