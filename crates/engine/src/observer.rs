//! Who else hears about a run: metrics, traces, lineage and notifications.
//!
//! The dispatcher owns a run's state and is the only writer of it. Observers get the changes
//! after the store has committed them, never before, so nothing reports a task done that the
//! store does not know as done; a crash between a commit and the call loses a report, not state.
//! After a restart the dispatcher resumes from the store and observers see only what follows;
//! the changes carry what a report needs from before (an attempt's finish says when it
//! started), and what must happen once across processes is settled through the store.

use std::fmt::Debug;
use std::sync::Arc;

use baton_core::ids::TaskKey;
use baton_core::model::Pipeline;
use baton_store::{Change, RunRecord, Store};

/// The run a report is about: its record as the dispatcher loaded it (state as of the start of
/// this dispatcher, ids, pipeline, trigger, times), its pinned definition, and the store it is
/// committed to (for what an observer must look up or settle with other processes).
#[derive(Debug, Clone, Copy)]
pub struct RunScope<'a> {
    pub run: &'a RunRecord,
    pub pipeline: &'a Pipeline,
    pub store: &'a Arc<dyn Store>,
}

/// What gate `key` asks, when it starts waiting in this commit: the dispatcher commits a
/// gate's message with the change that sets it waiting.
#[must_use]
pub fn asked<'a>(changes: &'a [Change], key: &TaskKey) -> Option<&'a str> {
    changes.iter().find_map(|c| match c {
        Change::Asked {
            key: k, message, ..
        } if k == key => Some(message.as_str()),
        _ => None,
    })
}

/// Hears a run's committed state changes.
///
/// Calls come from the dispatcher's task, between two steps of the run: an observer must
/// return at once and hand slow work (network, disk) to a task of its own. Failures of an
/// observer are its own business: they never fail the run.
pub trait Observer: Send + Sync + Debug {
    /// The changes one commit made durable, in the order the dispatcher made them.
    fn committed(&self, scope: RunScope<'_>, changes: &[Change]);

    /// Extra environment for an attempt about to start (W3C `TRACEPARENT`, say). Called before
    /// the attempt's start is committed, so it must depend only on its arguments if a resumed
    /// run is to give the same answer.
    fn attempt_env(
        &self,
        _scope: RunScope<'_>,
        _key: &TaskKey,
        _attempt: u32,
    ) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The dispatcher lost the run to another process (`holder`, which took the lease over
    /// while this one stalled): nothing more of this run is committed here.
    fn lease_lost(&self, _scope: RunScope<'_>, _holder: &str) {}
}

/// Every observer of a dispatcher, told in the order they were added.
#[derive(Debug, Clone, Default)]
pub struct Observers(Vec<Arc<dyn Observer>>);

impl Observers {
    #[must_use]
    pub fn with(mut self, observer: Arc<dyn Observer>) -> Self {
        self.0.push(observer);
        self
    }

    pub fn push(&mut self, observer: Arc<dyn Observer>) {
        self.0.push(observer);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Observer for Observers {
    fn committed(&self, scope: RunScope<'_>, changes: &[Change]) {
        for o in &self.0 {
            o.committed(scope, changes);
        }
    }

    fn attempt_env(
        &self,
        scope: RunScope<'_>,
        key: &TaskKey,
        attempt: u32,
    ) -> Vec<(String, String)> {
        self.0
            .iter()
            .flat_map(|o| o.attempt_env(scope, key, attempt))
            .collect()
    }

    fn lease_lost(&self, scope: RunScope<'_>, holder: &str) {
        for o in &self.0 {
            o.lease_lost(scope, holder);
        }
    }
}
