//! The dispatcher's hold on its run: the lease it takes, renews and names in every write,
//! and what it does when the store says the lease is gone (another process took the run over
//! while this one stalled): stop at once, and write nothing more.

use std::time::Duration;

use baton_store::{Fence, Lease, RunRecord, Store};

use super::{Dispatcher, Options};
use crate::clock::now_ms;
use crate::error::{Error, Result};

/// How long an abandoned run's attempts get to report that they stopped. The executor kills
/// them (SIGTERM, its grace, SIGKILL) on its own; this only bounds the wait for the news.
const ABANDON_WAIT: Duration = Duration::from_secs(120);

/// The least time a store call gets after a stall, whatever the lease settings: enough for a
/// busy but reachable database.
const MIN_PROBE: Duration = Duration::from_secs(1);

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Takes the run's lease (from a holder that is a dead process of this host, too), or says
/// who holds it.
pub(super) async fn acquire(store: &dyn Store, run: &RunRecord, opts: &Options) -> Result<Lease> {
    let now = now_ms();
    let stale = run
        .lease_owner
        .as_deref()
        .filter(|owner| crate::owner_is_dead(owner));
    let expires_at = now.saturating_add(millis(opts.lease_ttl));
    // Taking a lease one holds already keeps it: a retry after a lost answer is harmless.
    let acquiring = || store.acquire_lease(&run.id, &opts.owner, now, expires_at, stale);
    match crate::transient::retried("taking the run's lease", acquiring).await? {
        Some(lease) => Ok(lease),
        None => Err(Error::Leased {
            run: run.id.to_string(),
            owner: run.lease_owner.clone().unwrap_or_default(),
        }),
    }
}

impl Dispatcher {
    /// Extends the lease; fails with the store's `LeaseLost` when another process took it.
    /// A renewal that fails with the database out of reach is tried again at the next tick,
    /// until [`Dispatcher::fence_deadline`]: then the run is given up.
    pub(super) async fn renew(&mut self) -> Result<()> {
        let asked = tokio::time::Instant::now();
        let expires_at = now_ms().saturating_add(millis(self.opts.lease_ttl));
        let renewal = self
            .store
            .renew_lease(&self.run.id, &self.lease, expires_at);
        match within(self.deadline_from(asked), &self.run.id, renewal).await? {
            Ok(()) => {
                self.held_until = asked + self.opts.lease_ttl;
                Ok(())
            }
            Err(e) if e.is_transient() && asked < self.fence_deadline() => {
                tracing::warn!(run = %self.run.id, error = %e, "cannot renew the run's lease; trying again");
                Ok(())
            }
            Err(e) if e.is_transient() => Err(self.expired()),
            Err(e) => Err(e.into()),
        }
    }

    /// Commits `changes` under the lease; a lost connection is retried while the lease
    /// lasts. Every try names the same commit number, so one whose answer was lost after it
    /// landed is not written again.
    pub(super) async fn commit(&mut self, changes: &[baton_store::Change]) -> Result<()> {
        let (store, run, lease) = (&self.store, &self.run.id, &self.lease);
        let fence = Fence::Lease {
            lease,
            commit: self.commits.next(),
        };
        patiently(self.store_deadline(), run, "a commit", || {
            store.apply(run, fence, changes)
        })
        .await?;
        self.commits = self.commits.next();
        Ok(())
    }

    /// Until when a store call made now may take, retries included (see [`patiently`]).
    pub(super) fn store_deadline(&self) -> tokio::time::Instant {
        self.deadline_from(tokio::time::Instant::now())
    }

    /// When this process stops trusting a lease it could not renew: one renewal interval
    /// before it expires, so that its attempts are stopped (`kill_grace`, at most that
    /// interval for no overlap) before another process may take the run over.
    pub(super) fn fence_deadline(&self) -> tokio::time::Instant {
        self.held_until
            .checked_sub(self.margin())
            .unwrap_or(self.held_until)
    }

    /// A renewal interval; settings keep it below the TTL, half the TTL bounds it where they
    /// do not.
    fn margin(&self) -> Duration {
        self.opts.lease_renew_interval.min(self.opts.lease_ttl / 2)
    }

    /// How long a store call made at `asked` may take: until the fence deadline, or, made
    /// after it (this process stalled past it: SIGSTOP, a frozen VM), one margin (a second at
    /// least). A database in reach answers within that, and says whether the lease is still
    /// this process's (the store fences the write either way); one out of reach gets the run
    /// given up.
    pub(super) fn deadline_from(&self, asked: tokio::time::Instant) -> tokio::time::Instant {
        self.fence_deadline()
            .max(asked + self.margin().max(MIN_PROBE))
    }

    fn expired(&self) -> Error {
        Error::LeaseExpired {
            run: self.run.id.clone(),
        }
    }
}

impl Dispatcher {
    /// After the lease is lost: nothing new starts and every running attempt is stopped
    /// through its executor (their results would be refused anyway, and the new owner runs
    /// them again), without a write. A sub-pipeline attempt's watch is dropped, not its child
    /// run: the new owner watches that child again.
    pub(super) async fn abandon(&mut self) {
        self.ready.clear();
        self.lookups.clear();
        self.timers.clear();
        self.pending.clear();
        self.notes.clear();
        self.detach_children();
        for running in self.running.values_mut() {
            running.handle.cancel();
        }
        tracing::warn!(
            run = %self.run.id,
            attempts = self.running.len(),
            "lost the run's lease: stopping its attempts without recording them"
        );
        let deadline = tokio::time::Instant::now() + ABANDON_WAIT;
        while !self.running.is_empty() {
            match tokio::time::timeout_at(deadline, self.done_rx.recv()).await {
                Ok(Some(finished)) => {
                    self.running.retain(|&i, _| {
                        self.insts[i].key != finished.key
                            || self.insts[i].attempts != finished.attempt
                    });
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// `op` on the store, tried again across a lost connection until `deadline` (while the lease
/// lasts), and given up with [`Error::LeaseExpired`] then: a database cut off by a partition
/// leaves a query waiting far longer than any lease, and a dispatcher waiting on one would not
/// stop its attempts in time for the owner after it.
pub(super) async fn patiently<T, Fut>(
    deadline: tokio::time::Instant,
    run: &baton_core::ids::RunId,
    what: &str,
    op: impl FnMut() -> Fut,
) -> Result<T>
where
    Fut: Future<Output = baton_store::Result<T>>,
{
    Ok(within(deadline, run, crate::transient::retried(what, op)).await??)
}

/// `op`, or [`Error::LeaseExpired`] for `run` when it has not returned by `deadline`: a
/// database cut off by a partition leaves a query waiting far longer than any lease.
pub(super) async fn within<T>(
    deadline: tokio::time::Instant,
    run: &baton_core::ids::RunId,
    op: impl Future<Output = T>,
) -> Result<T> {
    tokio::time::timeout_at(deadline, op)
        .await
        .map_err(|_| Error::LeaseExpired { run: run.clone() })
}
