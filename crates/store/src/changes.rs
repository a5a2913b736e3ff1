//! The change feed: the id of each run a commit touched, as soon as the commit is done, so a
//! reader waits for a change instead of asking the database every few hundred milliseconds.
//!
//! A store announces its own commits in process. On PostgreSQL each writing transaction also
//! calls `pg_notify` (delivered when it commits, never before), and one listener connection
//! per store brings other processes' commits in. SQLite has nothing of the kind: a store on a
//! SQLite home hears only itself, and [`Changes::hears_others`] says so, for readers to keep a
//! fallback poll for the commits of other processes (`baton cancel` beside `baton run`).

use std::time::Duration;

use baton_core::ids::RunId;
use tokio::sync::{broadcast, watch};

/// The PostgreSQL channel commits are announced on; a payload is `RUN_ID ORIGIN KIND`, the
/// kind `s` (state) or `r` (request).
pub(crate) const CHANNEL: &str = "baton_runs";
/// Announcements a slow subscriber may fall behind by before it is told it missed some.
const CAPACITY: usize = 1024;
/// Longest wait between two attempts to connect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a commit changed of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Its state, tasks or events: what its owner writes.
    State,
    /// A request of its owner: cancel, or a decision on an approval gate.
    Request,
}

impl Kind {
    pub(crate) fn letter(self) -> char {
        match self {
            Self::State => 's',
            Self::Request => 'r',
        }
    }
}

#[derive(Debug, Clone)]
struct Note {
    run: RunId,
    kind: Kind,
}

/// The sending side, one per store (shared by its clones).
#[derive(Debug, Clone)]
pub(crate) struct ChangeFeed {
    tx: broadcast::Sender<Note>,
    /// Whether a listener hears every process's commits (PostgreSQL, while connected).
    others: watch::Sender<bool>,
    /// Names this store in its notifications, so its listener skips what was announced in
    /// process already.
    origin: String,
}

impl ChangeFeed {
    pub(crate) fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            others: watch::channel(false).0,
            origin: ulid::Ulid::new().to_string(),
        }
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Announces committed runs to this process's subscribers.
    pub(crate) fn committed<'a>(&self, kind: Kind, runs: impl IntoIterator<Item = &'a RunId>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        for run in runs {
            // Fails only without subscribers, who then have nothing to miss.
            let _ = self.tx.send(Note {
                run: run.clone(),
                kind,
            });
        }
    }

    pub(crate) fn subscribe(&self) -> Changes {
        Changes {
            rx: self.tx.subscribe(),
            others: self.others.subscribe(),
        }
    }

    /// Follows PostgreSQL's notifications at `url` until the returned guard is dropped,
    /// reconnecting (with backoff) whenever the connection is lost.
    pub(crate) fn listen(&self, url: &str) -> ListenerGuard {
        let feed = self.clone();
        let url = url.to_owned();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match feed.follow(&url).await {
                    // It was up: the next failure starts the backoff again.
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(error = %e, "store change listener cannot connect; readers poll until it can");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        ListenerGuard(task.abort_handle())
    }

    /// One listener connection's life: returns when it is lost.
    async fn follow(&self, url: &str) -> Result<(), sqlx::Error> {
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        // A lost connection ends this call; `listen` reconnects with backoff.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        self.others.send_replace(true);
        let lost = loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let mut words = n.payload().split(' ');
                    let run = words.next().unwrap_or_default();
                    let origin = words.next().unwrap_or_default();
                    let kind = match words.next() {
                        Some("r") => Kind::Request,
                        _ => Kind::State,
                    };
                    if origin != self.origin {
                        self.committed(kind, [&RunId::from_string(run)]);
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        self.others.send_replace(false);
        match lost {
            None => tracing::warn!("store change listener lost its connection; reconnecting"),
            Some(e) => tracing::warn!(error = %e, "store change listener failed; reconnecting"),
        }
        Ok(())
    }
}

/// Stops a store's listener when the last clone of the store goes.
#[derive(Debug)]
pub(crate) struct ListenerGuard(tokio::task::AbortHandle);

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One subscriber's view of a store's commits (see [`crate::Store::changes`]).
#[derive(Debug)]
pub struct Changes {
    rx: broadcast::Receiver<Note>,
    others: watch::Receiver<bool>,
}

impl Changes {
    /// Returns after a commit that touched `run`, or that may have: after falling behind (a
    /// burst of commits overflowed this subscriber's buffer), and whenever the listener for
    /// other processes connects or drops (what it missed meanwhile is unknown). The caller
    /// re-reads what it follows either way. Never returns once the store is gone.
    pub async fn changed(&mut self, run: &RunId) {
        self.next(run, false).await;
    }

    /// As [`Changes::changed`], for requests of the run's owner only (a cancel request, a
    /// decision on an approval gate): what its dispatcher waits for, which its own commits
    /// do not wake.
    pub async fn requested(&mut self, run: &RunId) {
        self.next(run, true).await;
    }

    async fn next(&mut self, run: &RunId, requests: bool) {
        loop {
            tokio::select! {
                got = self.rx.recv() => match got {
                    Ok(n) if n.run == *run && (!requests || n.kind == Kind::Request) => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                },
                Ok(()) = self.others.changed() => return,
            }
        }
    }

    /// Drops what is announced so far. Called just before a read (which sees all of it), so
    /// that a burst of commits wakes a reader once, not once per commit.
    pub fn clear(&mut self) {
        self.rx = self.rx.resubscribe();
    }

    /// Whether commits of other processes are announced too (PostgreSQL with its listener
    /// connected). When not, whatever another process writes is seen only by reading.
    pub fn hears_others(&self) -> bool {
        *self.others.borrow()
    }
}
