//! Traces of runs over OTLP: one trace per run, a span per task attempt.

mod ids;
mod observer;
mod pipeline;
mod settings;

pub use ids::{attempt_span_id, run_span_id, trace_id, traceparent};
pub use observer::TraceObserver;
pub use pipeline::Traces;
pub use settings::{Protocol, TraceError, TraceSettings};
