//! `concurrency:`: how many runs of a pipeline may be active at once.

use schemars::JsonSchema;

use super::kinds::Overlap;
use crate::decode::{Decode, Decoder};
use crate::span::Spanned;
use crate::yaml::Node;

#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ConcurrencySpec {
    /// At most this many active runs (default: no limit).
    pub max_active_runs: Option<Spanned<u32>>,
    /// What a new run does when the limit is reached (default `queue`).
    pub overlap: Option<Overlap>,
}

impl Decode for ConcurrencySpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "`concurrency`")?;
        let spec = Self {
            max_active_runs: m.opt(d, "max_active_runs", Decode::decode),
            overlap: m.opt(d, "overlap", Decode::decode),
        };
        m.finish(d);
        Some(spec)
    }
}
