//! The HTTP routes; handlers are thin over the store, the catalog and the engine.

pub(crate) mod backfills;
pub(crate) mod dead_letters;
pub(crate) mod health;
pub(crate) mod logs;
pub(crate) mod pipelines;
pub(crate) mod runs;
pub(crate) mod webhook;
