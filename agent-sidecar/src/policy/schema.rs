//! The published JSON Schema of policy documents and fixture files,
//! generated from the types the parser uses, so it cannot drift:
//! `docs/policy.schema.json` is checked against it by a test (run with
//! `UPDATE_SCHEMA=1` to rewrite the file).

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::{
    document::{AgentDoc, BaseDoc, OverlayDoc, RoleDoc, TeamDoc},
    fixtures::FixtureFile,
};

/// The JSON Schema (draft 2020-12) of a tier policy document: one of the
/// five kinds.
pub fn policy_schema() -> Value {
    let mut g = SchemaSettings::draft2020_12().into_generator();
    let kinds = vec![
        g.subschema_for::<BaseDoc>().to_value(),
        g.subschema_for::<TeamDoc>().to_value(),
        g.subschema_for::<RoleDoc>().to_value(),
        g.subschema_for::<AgentDoc>().to_value(),
        g.subschema_for::<OverlayDoc>().to_value(),
    ];
    // Registers $defs/FixtureFile.
    g.subschema_for::<FixtureFile>();
    let defs: Map<String, Value> = g.take_definitions(true);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.invalid/agent-sidecar/policy.schema.json",
        "title": "agent-sidecar tier policy document",
        "description": "One YAML document of a tier policy set (kind: base, team, role, agent or overlay). Fixture files for `policy test` follow $defs/FixtureFile. Generated from the code: see docs/policy.md.",
        "oneOf": kinds,
        "$defs": defs,
    })
}

/// [`policy_schema`] as the text written to `docs/policy.schema.json`.
pub fn policy_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&policy_schema()).expect("schema serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;
