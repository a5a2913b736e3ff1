//! The JSON Schema of the pipeline format, generated from the spec types.

use schemars::generate::SchemaSettings;

use crate::spec::PipelineSpec;

/// Where the published schema lives, for `$id` and editor configuration.
pub const SCHEMA_ID: &str = "https://baton.dev/schema/pipeline.schema.json";

/// The schema (draft 2020-12) as JSON.
pub fn pipeline_schema() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<PipelineSpec>();
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("$id".into(), SCHEMA_ID.into());
    }
    value
}

/// The schema as pretty-printed text with a trailing newline, as committed in the repository.
pub fn pipeline_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&pipeline_schema()).unwrap_or_default();
    text.push('\n');
    text
}
