//! The published JSON Schema of policy documents and fixture files,
//! generated from the types the parser uses, so it cannot drift:
//! `docs/policy.schema.json` is checked against it by a test (run with
//! `UPDATE_SCHEMA=1` to rewrite the file).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde_json::{Map, Value, json};

use super::{
    document::{AgentDoc, BaseDoc, OverlayDoc, RoleDoc, TeamDoc},
    file::{AllowEntry, EgressSection, NameEntry},
    fixtures::FixtureFile,
};
use crate::egress::Protocols;

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

impl JsonSchema for EgressSection {
    fn schema_name() -> Cow<'static, str> {
        "EgressSection".into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let entry = g.subschema_for::<AllowEntry>();
        let name = g.subschema_for::<NameEntry>();
        json_schema!({
            "description": "`egress:` — what the agent may reach. A child's entries must be within its parent's.",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "allow": { "type": "array", "items": entry, "default": [] },
                "names": { "type": "array", "items": name, "default": [] }
            }
        })
    }
}

impl JsonSchema for NameEntry {
    fn schema_name() -> Cow<'static, str> {
        "NameEntry".into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let protocols = g.subschema_for::<Protocols>();
        json_schema!({
            "description": "A host name or pattern with optional ports (`api.example.com:443`, `*.example.com`, `**.example.com`), or a mapping.",
            "oneOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name"],
                    "properties": {
                        "name": { "type": "string" },
                        "ports": { "type": "array", "items": { "type": "integer", "minimum": 1, "maximum": 65535 } },
                        "protocol": protocols,
                        "allow_private": { "type": "boolean", "description": "Answers may resolve to private, loopback, link-local or metadata addresses." },
                        "force": { "type": "boolean", "description": "Accept a pattern as broad as a public suffix." },
                        "description": { "type": "string" }
                    }
                }
            ]
        })
    }
}

impl JsonSchema for AllowEntry {
    fn schema_name() -> Cow<'static, str> {
        "AllowEntry".into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let protocols = g.subschema_for::<Protocols>();
        json_schema!({
            "description": "An egress target (IP:PORT, [IPv6]:PORT, CIDR, CIDR:PORT), or a mapping with `target`, `protocol` and `description`.",
            "oneOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["target"],
                    "properties": {
                        "target": { "type": "string" },
                        "protocol": protocols,
                        "description": { "type": "string" }
                    }
                }
            ]
        })
    }
}

impl JsonSchema for Protocols {
    fn schema_name() -> Cow<'static, str> {
        "Protocols".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "tcp, udp or any (default).",
            "enum": ["any", "tcp", "udp"]
        })
    }
}

#[cfg(test)]
mod tests;
