//! Trace and span ids derived from the run, not drawn at random.
//!
//! An attempt's `TRACEPARENT` is handed to its process before the attempt's span exists, and
//! a run resumed by another process (or after a crash) must continue the same trace; both
//! work only if every id follows from what the store knows.

use baton_core::ids::{RunId, TaskKey};
use opentelemetry::trace::{SpanId, TraceId};
use sha2::{Digest, Sha256};

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so no two lists of parts hash alike.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

fn span(d: [u8; 32]) -> SpanId {
    let mut b = [0; 8];
    b.copy_from_slice(&d[..8]);
    // An all-zero id is invalid; one hash in 2^64 gets a fixed substitute.
    if b == [0; 8] {
        b[7] = 1;
    }
    SpanId::from_bytes(b)
}

/// The trace of a run.
pub fn trace_id(run: &RunId) -> TraceId {
    let d = digest(&[b"trace", run.as_str().as_bytes()]);
    let mut b = [0; 16];
    b.copy_from_slice(&d[..16]);
    if b == [0; 16] {
        b[15] = 1;
    }
    TraceId::from_bytes(b)
}

/// The root span of a run, the parent of its attempts' spans.
pub fn run_span_id(run: &RunId) -> SpanId {
    span(digest(&[b"run", run.as_str().as_bytes()]))
}

/// The span of one attempt of a task instance.
pub fn attempt_span_id(run: &RunId, key: &TaskKey, attempt: u32) -> SpanId {
    span(digest(&[
        b"attempt",
        run.as_str().as_bytes(),
        key.as_str().as_bytes(),
        &attempt.to_be_bytes(),
    ]))
}

/// The W3C `traceparent` of an attempt: its process's spans become children of the attempt.
pub fn traceparent(run: &RunId, key: &TaskKey, attempt: u32) -> String {
    format!(
        "00-{}-{}-01",
        trace_id(run),
        attempt_span_id(run, key, attempt)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_from_the_run_and_differ_between_attempts() {
        let run = RunId::from_string("01J0000000000000000000000A");
        let other = RunId::from_string("01J0000000000000000000000B");
        let key = TaskKey::from_string("load[eu]");
        assert_eq!(trace_id(&run), trace_id(&run));
        assert_ne!(trace_id(&run), trace_id(&other));
        assert_ne!(
            attempt_span_id(&run, &key, 1),
            attempt_span_id(&run, &key, 2)
        );
        assert_ne!(attempt_span_id(&run, &key, 1), run_span_id(&run));
        let tp = traceparent(&run, &key, 1);
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len(), parts[3]),
            ("00", 32, 16, "01")
        );
        assert_eq!(parts[1], trace_id(&run).to_string());
    }
}
