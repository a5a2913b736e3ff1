//! Crash injection for durability tests: with `BATON_FAULT_CRASH_AFTER_COMMITS=N`, the process
//! aborts (as `kill -9` would end it) right after its N-th committed state change.

use std::sync::atomic::{AtomicU64, Ordering};

static COMMITS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn after_commit() {
    let n = COMMITS.fetch_add(1, Ordering::SeqCst) + 1;
    if std::env::var("BATON_FAULT_CRASH_AFTER_COMMITS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|limit| n >= limit)
    {
        std::process::abort();
    }
}
