//! Keyword values shared by the spec and the checked model.

use crate::keyword::keyword_enum;

keyword_enum!(
    /// When a task runs, given the states of the tasks it needs.
    TriggerRule, "trigger rule" {
        /// Every upstream task succeeded (skipped upstreams skip this task too).
        AllSuccess = "all_success",
        /// Every upstream task finished, whatever its state.
        AllDone = "all_done",
        /// At least one upstream task failed.
        OneFailed = "one_failed",
        /// Every upstream task failed.
        AllFailed = "all_failed",
        /// At least one upstream task succeeded.
        OneSuccess = "one_success",
        /// No upstream task failed (succeeded or skipped).
        NoneFailed = "none_failed",
    }
);

keyword_enum!(
    /// How the delay between retries grows.
    Backoff, "backoff" {
        Fixed = "fixed",
        Linear = "linear",
        Exponential = "exponential",
    }
);

keyword_enum!(
    /// Randomisation of retry delays, so that retries of many tasks do not arrive together.
    Jitter, "jitter" {
        /// Use the computed delay as is.
        None = "none",
        /// A random delay between zero and the computed delay.
        Full = "full",
        /// Half the computed delay plus a random part of the other half.
        Equal = "equal",
    }
);

keyword_enum!(
    /// What to do with schedule ticks missed while baton was not running.
    Catchup, "catchup policy" {
        /// Drop missed ticks.
        None = "none",
        /// Run once for the most recent missed tick.
        Latest = "latest",
        /// Run every missed tick (bounded by the server's catch-up cap).
        All = "all",
    }
);

keyword_enum!(
    /// What a new run does when `max_active_runs` runs are already active.
    Overlap, "overlap policy" {
        /// Do not start the new run.
        Skip = "skip",
        /// Start the new run when a slot frees up.
        Queue = "queue",
        /// Cancel the oldest active run and start the new one.
        CancelPrevious = "cancel_previous",
    }
);

keyword_enum!(
    /// The JSON type of a run parameter.
    ParamType, "param type" {
        String = "string",
        Integer = "integer",
        Number = "number",
        Boolean = "boolean",
        Array = "array",
        Object = "object",
    }
);
