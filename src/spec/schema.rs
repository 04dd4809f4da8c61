//! The JSON Schema of the spec, for editors (yaml-language-server reads draft-07 and older).

use schemars::generate::SchemaSettings;

use super::model::Spec;

/// The spec's JSON Schema, draft-07, pretty-printed with a trailing newline.
pub fn json_schema() -> String {
    let schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Spec>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
