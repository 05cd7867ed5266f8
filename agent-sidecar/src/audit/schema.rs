//! The published JSON Schema of an audit record, generated from
//! [`AuditRecord`] so it cannot drift: `docs/audit.schema.json` is checked
//! against it by a test; rewrite the file with
//! `UPDATE_SCHEMA=1 cargo test -p agent-sidecar --lib audit::schema` (or
//! `agent-sidecar audit schema > docs/audit.schema.json`).

use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::record::AuditRecord;

/// The JSON Schema (draft 2020-12) of one record line.
pub fn audit_schema() -> Value {
    let g = SchemaSettings::draft2020_12().into_generator();
    let mut schema = g.into_root_schema_for::<AuditRecord>().to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            "https://example.invalid/agent-sidecar/audit.schema.json".into(),
        );
        obj.insert("title".into(), "agent-sidecar audit record".into());
        obj.insert(
            "description".into(),
            "One line of an agent-sidecar audit log segment (docs/audit.md). The record's leaf hash is SHA-256(0x00 || the line's bytes without the newline). Generated from the code.".into(),
        );
    }
    schema
}

/// [`audit_schema`] as the text written to `docs/audit.schema.json`.
pub fn audit_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&audit_schema()).expect("schema serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;
