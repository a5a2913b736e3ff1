//! Datasets a task reads (`inputs:`) or writes (`outputs:`), for lineage.

use schemars::JsonSchema;

use crate::decode::{Decode, Decoder};
use crate::span::Spanned;
use crate::yaml::{Node, NodeValue};

/// A dataset as written: a URI (`postgres://db/schema.table`, `s3://bucket/path`,
/// `file:///data/x.csv`) or an OpenLineage `{namespace, name}` pair. Under `outputs:`, a bare
/// name without `://` is a value output instead (written to `$BATON_OUTPUTS`).
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum DatasetSpec {
    Text(String),
    Named(DatasetNameSpec),
}

/// An OpenLineage dataset identifier.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DatasetNameSpec {
    /// Where the dataset lives, e.g. `postgres://db:5432` or `s3://bucket`.
    pub namespace: Spanned<String>,
    /// The dataset within its namespace, e.g. `schema.table` or `path/to/file`.
    pub name: Spanned<String>,
}

impl Decode for DatasetSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        match &node.value {
            NodeValue::Map(_) => {
                let mut m = d.map(node, "a dataset")?;
                let namespace = m.req(d, "namespace", Decode::decode);
                let name = m.req(d, "name", Decode::decode);
                m.finish(d);
                Some(Self::Named(DatasetNameSpec {
                    namespace: namespace?,
                    name: name?,
                }))
            }
            NodeValue::Str(s) => Some(Self::Text(s.clone())),
            _ => {
                d.error(
                    node.span,
                    format!("expected a dataset URI or a mapping, found {}", node.kind()),
                )
                .hint = Some(
                    "write `postgres://db/schema.table` or `{ namespace: s3://bucket, name: path }`"
                        .into(),
                );
                None
            }
        }
    }
}
