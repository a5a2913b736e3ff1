//! Schema fragments for values the decoder accepts in more than one YAML form.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// Text that may be written as a bare number or boolean (`PORT: 5432`).
#[derive(Debug)]
pub(crate) struct ScalarText;

impl JsonSchema for ScalarText {
    fn schema_name() -> Cow<'static, str> {
        "ScalarText".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// An expression: a string (with or without `{{ }}`) or a literal boolean.
#[derive(Debug)]
pub(crate) struct ExpressionSchema;

impl JsonSchema for ExpressionSchema {
    fn schema_name() -> Cow<'static, str> {
        "Expression".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "boolean"],
            "description": "An expression, e.g. `tasks.extract.outputs.rows | int > 0`; `{{ }}` around it is optional."
        })
    }
}
