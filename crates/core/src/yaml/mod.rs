//! YAML reading: a spanned node tree that keeps every location for diagnostics.

mod node;
mod parse;

pub use node::{Node, NodeValue};
pub use parse::{MAX_ALIAS_NODES, MAX_DEPTH, parse};
