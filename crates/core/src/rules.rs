//! Deciding what a task does once its upstream tasks have (partly) finished.

use crate::spec::TriggerRule;
use crate::state::TaskState;

/// What to do with a task given its upstream states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not decidable yet: some upstream task is still going.
    Wait,
    /// Run it (subject to its `if:` condition).
    Run,
    Skip,
    UpstreamFailed,
}

/// Applies a trigger rule to the upstream states, Airflow style. `one_success` and
/// `one_failed` fire as soon as one upstream qualifies; the other rules wait for all.
pub fn decide(rule: TriggerRule, upstream: &[TaskState]) -> Decision {
    let done = upstream.iter().filter(|s| s.is_final()).count();
    let all_done = done == upstream.len();
    let succeeded = upstream
        .iter()
        .filter(|s| **s == TaskState::Succeeded)
        .count();
    let failed = upstream.iter().filter(|s| s.is_failure()).count();
    let skipped = upstream
        .iter()
        .filter(|s| **s == TaskState::Skipped)
        .count();
    let cancelled = upstream
        .iter()
        .filter(|s| **s == TaskState::Cancelled)
        .count();
    match rule {
        TriggerRule::OneSuccess if succeeded > 0 => Decision::Run,
        TriggerRule::OneFailed if failed > 0 => Decision::Run,
        _ if !all_done => Decision::Wait,
        // A cancelled upstream ends the chain for every rule but `all_done`.
        TriggerRule::AllDone => Decision::Run,
        _ if cancelled > 0 => Decision::Skip,
        TriggerRule::AllSuccess if failed > 0 => Decision::UpstreamFailed,
        TriggerRule::AllSuccess if skipped > 0 => Decision::Skip,
        TriggerRule::AllSuccess => Decision::Run,
        TriggerRule::AllFailed if failed == upstream.len() => Decision::Run,
        TriggerRule::AllFailed => Decision::Skip,
        TriggerRule::OneFailed => Decision::Skip,
        TriggerRule::OneSuccess if failed > 0 => Decision::UpstreamFailed,
        TriggerRule::OneSuccess => Decision::Skip,
        TriggerRule::NoneFailed if failed > 0 => Decision::UpstreamFailed,
        TriggerRule::NoneFailed => Decision::Run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::{Failed, Pending, Running, Skipped, Succeeded, UpstreamFailed};

    #[test]
    fn table() {
        use Decision as D;
        let cases: &[(TriggerRule, &[TaskState], Decision)] = &[
            (TriggerRule::AllSuccess, &[], D::Run),
            (TriggerRule::AllSuccess, &[Succeeded, Succeeded], D::Run),
            (TriggerRule::AllSuccess, &[Succeeded, Running], D::Wait),
            (
                TriggerRule::AllSuccess,
                &[Succeeded, Failed],
                D::UpstreamFailed,
            ),
            (
                TriggerRule::AllSuccess,
                &[Succeeded, UpstreamFailed],
                D::UpstreamFailed,
            ),
            (TriggerRule::AllSuccess, &[Succeeded, Skipped], D::Skip),
            (TriggerRule::AllDone, &[Failed, Skipped], D::Run),
            (TriggerRule::AllDone, &[Failed, Pending], D::Wait),
            (TriggerRule::OneFailed, &[Failed, Running], D::Run),
            (TriggerRule::OneFailed, &[UpstreamFailed, Succeeded], D::Run),
            (TriggerRule::OneFailed, &[Succeeded, Succeeded], D::Skip),
            (TriggerRule::AllFailed, &[Failed, UpstreamFailed], D::Run),
            (TriggerRule::AllFailed, &[Failed, Succeeded], D::Skip),
            (TriggerRule::OneSuccess, &[Succeeded, Running], D::Run),
            (
                TriggerRule::OneSuccess,
                &[Failed, Skipped],
                D::UpstreamFailed,
            ),
            (TriggerRule::OneSuccess, &[Skipped, Skipped], D::Skip),
            (TriggerRule::NoneFailed, &[Succeeded, Skipped], D::Run),
            (
                TriggerRule::NoneFailed,
                &[Succeeded, Failed],
                D::UpstreamFailed,
            ),
            (
                TriggerRule::AllSuccess,
                &[Succeeded, TaskState::Cancelled],
                D::Skip,
            ),
        ];
        for (rule, ups, want) in cases {
            assert_eq!(decide(*rule, ups), *want, "{rule} {ups:?}");
        }
    }
}
