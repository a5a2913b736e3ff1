//! baton's core: pipeline definitions, their validation into a checked DAG, and the pure
//! rules (retries, schedules, parameters) the engine applies. No I/O happens here.
//!
//! The flow is `yaml::parse` (spanned nodes) -> `spec` (the file as written, decoded with every
//! problem collected) -> `compile` (cross-field checks) -> `model::Pipeline`. [`load::load`]
//! runs all three.

pub mod ancestry;
pub mod compile;
pub mod dag;
pub mod decode;
pub mod diagnostic;
pub mod duration;
pub mod graph;
pub mod ids;
mod keyword;
pub mod lineage;
pub mod load;
pub mod model;
pub mod render;
pub mod rules;
pub mod schema;
pub mod shell;
pub mod span;
pub mod spec;
pub mod state;
pub mod template;
pub mod yaml;

pub use diagnostic::{Diagnostic, Severity};
pub use load::{Loaded, Setting, load, load_in};
pub use model::Pipeline;
