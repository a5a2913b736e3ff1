//! Giving memory back to the system once a large run is over.
#![allow(unsafe_code)]

/// Returns the heap's free pages to the system. glibc keeps what a run of 100,000 tasks
/// freed (the dispatcher's per-task state, the store's rows, responses built meanwhile) in
/// its arenas for reuse, so a server that drove one would otherwise stay at its peak; the
/// runner calls this when a run ends. Elsewhere (musl, other systems) it does nothing.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes how much padding to keep and only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
