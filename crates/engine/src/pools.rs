//! Slots of pools, as a dispatcher asks for them. The count is the store's (see
//! `Store::claim_slot`); this adds what only a process can know: which holders are dead
//! processes on this host, whose slots are taken back at once rather than when their leases
//! expire, and a signal between the dispatchers of this process that a slot came free.

use std::sync::LazyLock;
use std::time::Duration;

use baton_core::ids::{RunId, TaskKey};
use baton_store::{Lease, Millis, SlotClaim, Store};
use tokio::sync::Notify;

/// How often a task waiting for a slot asks again, when no slot came free in this process.
pub(crate) const RETRY: Duration = Duration::from_millis(200);

static RELEASED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Tells this process's dispatchers that a slot came free.
pub(crate) fn released() {
    RELEASED.notify_waiters();
}

/// Returns when [`released`] is next called.
pub(crate) async fn next_release() {
    RELEASED.notified().await;
}

/// What asking for a slot came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    Held,
    Full,
    /// The task cannot run: the message says why.
    Missing(String),
}

/// Asks `pool` for a slot for `key`, of `priority`, at `now`. When the pool is full and some
/// holders are processes of this host that no longer exist, their claims are dropped and the
/// slot asked for again. A task that waits must ask again within a few seconds to keep its
/// place ahead of later and lower waiters (see `Store::claim_slot`): [`RETRY`] is well inside.
pub(crate) async fn claim(
    store: &dyn Store,
    pool: &str,
    run: &RunId,
    key: &TaskKey,
    priority: i32,
    lease: &Lease,
    now: Millis,
) -> baton_store::Result<Slot> {
    let mut reclaimed = false;
    loop {
        match store
            .claim_slot(pool, run, key, priority, lease, now)
            .await?
        {
            SlotClaim::Held => return Ok(Slot::Held),
            SlotClaim::NoPool => {
                return Ok(Slot::Missing(format!(
                    "pool `{pool}` does not exist\n(hint: `baton pool set {pool} --slots N`)"
                )));
            }
            SlotClaim::Full { holders } => {
                if reclaimed {
                    return Ok(Slot::Full);
                }
                reclaimed = true;
                let mut dropped = 0;
                for dead in holders.iter().filter(|h| crate::owner_is_dead(h)) {
                    dropped += store.drop_claims(dead).await?;
                    tracing::info!(pool, owner = %dead, "took back the pool slots of a dead process");
                }
                if dropped == 0 {
                    return Ok(Slot::Full);
                }
            }
        }
    }
}

/// Most slots a pool may have.
pub const MAX_SLOTS: i64 = 1_000_000;

/// What is wrong with a pool as someone asks to set it, if anything: a name of letters,
/// digits, `.`, `_` and `-` (it goes in URLs and tables), and 0 to [`MAX_SLOTS`] slots.
pub fn pool_problem(name: &str, slots: i64) -> Option<String> {
    if baton_core::ids::PoolName::new(name).is_err() {
        return Some(format!(
            "pool name `{name}` is not valid\n(hint: use letters, digits, `.`, `_` and `-`, at most 100)"
        ));
    }
    if !(0..=MAX_SLOTS).contains(&slots) {
        return Some(format!(
            "`slots` must be between 0 and {MAX_SLOTS}, got {slots}\n(hint: 0 pauses the pool)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::pool_problem;

    #[test]
    fn pool_names_and_slots_are_checked() {
        assert_eq!(pool_problem("gpu-a.1_x", 0), None);
        assert_eq!(pool_problem("gpu", 1_000_000), None);
        assert!(pool_problem("", 1).is_some_and(|p| p.contains("not valid")));
        assert!(pool_problem("a b", 1).is_some_and(|p| p.contains("not valid")));
        assert!(pool_problem("gpu", -1).is_some_and(|p| p.contains("got -1")));
        assert!(pool_problem("gpu", 1_000_001).is_some_and(|p| p.contains("between 0")));
    }
}
