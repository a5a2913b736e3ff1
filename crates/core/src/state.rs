//! The states of runs, task instances and attempts, and which are final.

use serde::Deserialize;

use crate::keyword::keyword_enum;

keyword_enum!(
    /// A run's lifecycle.
    RunState, "run state" {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

keyword_enum!(
    /// A task instance's lifecycle. `UpstreamFailed` and `Skipped` follow Airflow: a task whose
    /// trigger rule can no longer be met is `upstream_failed`, one whose condition is false or
    /// whose upstreams were skipped is `skipped`.
    TaskState, "task state" {
        /// Waiting for upstream tasks.
        Pending = "pending",
        /// Ready, waiting for a free slot.
        Queued = "queued",
        Running = "running",
        /// Failed an attempt; the next one starts after the retry delay.
        Retrying = "retrying",
        /// Waiting for a person to approve.
        WaitingApproval = "waiting_approval",
        Succeeded = "succeeded",
        Failed = "failed",
        UpstreamFailed = "upstream_failed",
        Skipped = "skipped",
        Cancelled = "cancelled",
    }
);

keyword_enum!(
    /// One execution of a task instance.
    AttemptState, "attempt state" {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        TimedOut = "timed_out",
        /// The process running it died with baton (crash, `kill -9`, host restart).
        Interrupted = "interrupted",
        Cancelled = "cancelled",
    }
);

impl RunState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl TaskState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::UpstreamFailed | Self::Skipped | Self::Cancelled
        )
    }

    /// Failed in the sense of trigger rules: the task or something it needed failed.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::UpstreamFailed)
    }
}

macro_rules! serde_by_name {
    ($($ty:ident),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown state `{s}`")))
            }
        }
    )*};
}
serde_by_name!(RunState, TaskState, AttemptState);
