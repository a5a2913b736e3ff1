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

/// With `BATON_FAULT_CRASH_AFTER_EXIT_RECORD` set, the process aborts right after an
/// executor recorded an exit (see `executor::exit_record`), before the dispatcher heard of it:
/// the narrow window where a finished attempt's end is known only to that file.
pub(crate) fn after_exit_recorded() {
    if std::env::var_os("BATON_FAULT_CRASH_AFTER_EXIT_RECORD").is_some() {
        std::process::abort();
    }
}
