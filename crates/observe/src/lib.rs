//! What baton tells the outside world about its runs: Prometheus metrics, OpenTelemetry
//! traces, notifications and OpenLineage events, with the durable delivery (outbox, retries)
//! they share. Everything here hears runs through the engine's [`baton_engine::Observer`]s;
//! nothing here starts or changes a run, and nothing here speaks HTTP as a server.

pub mod delivery;
pub mod lineage;
pub mod metrics;
pub mod notify;
pub mod observers;
pub mod outbox;
pub mod secrets;
pub mod traces;
