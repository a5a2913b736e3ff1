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

/// `needs: a` or `needs: [a, b]`.
#[derive(Debug)]
pub(crate) struct NeedsSchema;

impl JsonSchema for NeedsSchema {
    fn schema_name() -> Cow<'static, str> {
        "Needs".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Task ids that must finish first: one id or a list.",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } }
            ]
        })
    }
}

/// `T`, or `true` as a shorthand for `T` with every field defaulted (`approval: true`).
#[derive(Debug)]
pub(crate) struct OrTrue<T>(std::marker::PhantomData<T>);

impl<T: JsonSchema> JsonSchema for OrTrue<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("{}OrTrue", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let inner = generator.subschema_for::<T>();
        json_schema!({ "anyOf": [inner, { "const": true }] })
    }
}

/// `T`, or nothing as a shorthand for `T` with every field defaulted (`- webhook:`).
#[derive(Debug)]
pub(crate) struct OrNull<T>(std::marker::PhantomData<T>);

impl<T: JsonSchema> JsonSchema for OrNull<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("{}OrNull", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let inner = generator.subschema_for::<T>();
        json_schema!({ "anyOf": [inner, { "type": "null" }] })
    }
}

/// `T`, or a list of `T` (`on: failure` or `on: [failure, deadline]`).
#[derive(Debug)]
pub(crate) struct OneOrList<T>(std::marker::PhantomData<T>);

impl<T: JsonSchema> JsonSchema for OneOrList<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("{}OrList", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let inner = generator.subschema_for::<T>();
        json_schema!({ "anyOf": [inner, { "type": "array", "items": inner, "minItems": 1 }] })
    }
}
