//! What observers have queued and not yet delivered, so a process can wait for it before it
//! exits: `baton run` ends right after its run does, and the failure notification of that run
//! would otherwise die with the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Counts messages in flight; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Outbox(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    pending: AtomicUsize,
    settled: Notify,
}

/// One message in flight: it counts until dropped, whatever became of the message.
#[derive(Debug)]
pub(crate) struct Ticket(Outbox);

impl Outbox {
    pub(crate) fn enter(&self) -> Ticket {
        self.0.pending.fetch_add(1, Ordering::SeqCst);
        Ticket(self.clone())
    }

    /// Messages queued or being sent.
    pub fn pending(&self) -> usize {
        self.0.pending.load(Ordering::SeqCst)
    }

    /// Waits until every message is delivered or given up on, or `within` passes. Says
    /// whether everything settled.
    pub async fn settle(&self, within: Duration) -> bool {
        let settled = async {
            loop {
                let notified = self.0.settled.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.pending() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(within, settled).await.is_ok()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.0.0.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.0.settled.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settles_when_the_last_ticket_drops() {
        let outbox = Outbox::default();
        assert!(outbox.settle(Duration::from_millis(1)).await);
        let a = outbox.enter();
        let b = outbox.enter();
        assert!(!outbox.settle(Duration::from_millis(20)).await);
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.settle(Duration::from_secs(5)).await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert_eq!(outbox.pending(), 1);
        drop(b);
        assert!(waiter.await.expect("waiter"));
    }
}
