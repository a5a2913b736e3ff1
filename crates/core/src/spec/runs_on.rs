//! A task's `runs_on:` as written: the labels of the workers that may run it.

use schemars::JsonSchema;

use crate::decode::{Decode, Decoder};
use crate::duration::Duration;
use crate::span::Spanned;
use crate::yaml::{Node, NodeValue};

/// Send the task to a `baton worker` whose labels include all of these; `runs_on: [gpu]` is
/// short for `runs_on: { labels: [gpu] }`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RunsOnSpec {
    /// Labels the worker must carry, e.g. `[gpu, eu]`.
    pub labels: Vec<Spanned<String>>,
    /// How long the task may wait for a live worker that matches before it fails
    /// (default `10m`).
    pub wait: Option<Spanned<Duration>>,
}

impl Decode for RunsOnSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        if let NodeValue::Seq(_) = &node.value {
            return Some(Self {
                labels: Decode::decode(d, node)?,
                wait: None,
            });
        }
        let mut m = d.map(node, "`runs_on`")?;
        let labels = m.req(d, "labels", Decode::decode);
        let wait = m.opt(d, "wait", Decode::decode);
        m.finish(d);
        Some(Self {
            labels: labels?,
            wait,
        })
    }
}
