//! Core's integration tests, one module a subject, built as one binary (see Cargo.toml).

mod artifacts;
mod container;
mod diagnostics;
mod graph;
mod lineage_notify;
mod robustness;
mod runs_on;
mod schedule;
mod schema;
mod shell_values;
mod spanned;
mod validation;
mod validation_edges;
mod yaml;
