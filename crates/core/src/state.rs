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

keyword_enum!(
    /// What started a run.
    RunTrigger, "run trigger" {
        /// Asked for: `baton run`, `baton trigger`, the API or the UI.
        Manual = "manual",
        /// A due cron tick.
        Schedule = "schedule",
        /// A signed webhook delivery.
        Webhook = "webhook",
        /// An upstream pipeline's success (`triggers: - pipeline:`).
        Pipeline = "pipeline",
        /// A sub-pipeline task of its parent run.
        Parent = "parent",
        /// One tick of a backfill.
        Backfill = "backfill",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ended_runs_are_final() {
        let finals: Vec<&str> = RunState::CHOICES
            .iter()
            .filter(|(_, s)| s.is_final())
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(finals, ["succeeded", "failed", "cancelled"]);
    }

    #[test]
    fn only_settled_task_states_are_final_and_two_are_failures() {
        let finals: Vec<&str> = TaskState::CHOICES
            .iter()
            .filter(|(_, s)| s.is_final())
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            finals,
            [
                "succeeded",
                "failed",
                "upstream_failed",
                "skipped",
                "cancelled"
            ]
        );
        let failures: Vec<&str> = TaskState::CHOICES
            .iter()
            .filter(|(_, s)| s.is_failure())
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(failures, ["failed", "upstream_failed"]);
    }

    #[test]
    fn states_read_back_from_their_wire_names() {
        let run: RunState = serde_json::from_str("\"cancelled\"").expect("known");
        assert_eq!(run, RunState::Cancelled);
        let task: TaskState = serde_json::from_str("\"waiting_approval\"").expect("known");
        assert_eq!(task, TaskState::WaitingApproval);
        let attempt: AttemptState = serde_json::from_str("\"timed_out\"").expect("known");
        assert_eq!(attempt, AttemptState::TimedOut);
        let err = serde_json::from_str::<TaskState>("\"done\"").expect_err("unknown");
        assert_eq!(err.to_string(), "unknown state `done`");
    }
}
