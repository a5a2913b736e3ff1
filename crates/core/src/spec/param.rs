//! A run parameter as declared under `params:`.

use schemars::JsonSchema;

use super::kinds::ParamType;
use crate::decode::{Decode, Decoder};
use crate::span::Spanned;
use crate::yaml::Node;

/// A typed run parameter. It is required when it has no `default`.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ParamSpec {
    /// The JSON type of the value (default: the type of `default`, else `string`).
    #[serde(rename = "type")]
    pub ty: Option<Spanned<ParamType>>,
    /// Value used when a trigger does not give one.
    pub default: Option<Spanned<serde_json::Value>>,
    /// Shown in the UI's trigger form and in `--help` of the pipeline.
    pub description: Option<String>,
    /// The only values allowed.
    #[serde(rename = "enum")]
    pub choices: Option<Spanned<Vec<serde_json::Value>>>,
    /// Smallest allowed value (numbers) or length (strings, arrays).
    pub min: Option<Spanned<f64>>,
    /// Largest allowed value (numbers) or length (strings, arrays).
    pub max: Option<Spanned<f64>>,
}

impl Decode for ParamSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "a param")?;
        let spec = Self {
            ty: m.opt(d, "type", Decode::decode),
            default: m.opt(d, "default", Decode::decode),
            description: m.opt(d, "description", Decode::decode),
            choices: m.opt(d, "enum", Decode::decode),
            min: m.opt(d, "min", Decode::decode),
            max: m.opt(d, "max", Decode::decode),
        };
        m.finish(d);
        Some(spec)
    }
}
