//! Run statistics of the pipelines page: success rate and duration percentiles over a window.

use baton_core::state::RunState;
use baton_store::{Millis, RunBrief};

/// How a pipeline's finished runs went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub finished: usize,
    pub succeeded: usize,
    pub p50: Option<Millis>,
    pub p95: Option<Millis>,
}

impl Stats {
    /// Of `runs` (one pipeline's finished runs).
    pub(crate) fn of<'a>(runs: impl IntoIterator<Item = &'a RunBrief>) -> Self {
        let mut finished = 0;
        let mut succeeded = 0;
        let mut durations = Vec::new();
        for r in runs {
            finished += 1;
            if r.state == RunState::Succeeded {
                succeeded += 1;
            }
            if let (Some(s), Some(f)) = (r.started_at, r.finished_at) {
                durations.push(f - s);
            }
        }
        durations.sort_unstable();
        Self {
            finished,
            succeeded,
            p50: percentile(&durations, 50),
            p95: percentile(&durations, 95),
        }
    }

    /// Whole percent of finished runs that succeeded.
    pub(crate) fn success_percent(&self) -> Option<usize> {
        (self.finished > 0).then(|| self.succeeded * 100 / self.finished)
    }
}

/// The nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[Millis], p: usize) -> Option<Millis> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Millis> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
    }
}
