//! The egress policy file (`--policy FILE`) and the `egress:` section it
//! shares with tier policy documents:
//!
//! ```yaml
//! version: 1
//! egress:
//!   allow:
//!     - 10.0.0.0/8:5432
//!     - target: "[2001:db8::1]:443"
//!       protocol: tcp
//!       description: payments API
//!   names:
//!     - api.github.com:443
//!     - name: "*.blob.example.com"
//!       ports: [443]
//!       description: artefact store
//! ```
//!
//! Unknown keys are errors; every error names the file, line and column.

use std::path::{Path, PathBuf};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, de};

use super::{
    Allowlist, Breadth, EgressRule, NameAllowlist, NamePattern, NameRule, Protocols, RuleSource,
    Target,
};

/// A policy file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version; must be 1.
    pub version: u32,
    /// Egress section.
    #[serde(default)]
    pub egress: EgressSection,
}

/// One `egress.names` entry: `HOST[:PORT[,PORT]]` or a mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct NameEntry {
    /// The rule (pattern, ports, protocols, rebinding exemption).
    pub rule: NameRule,
    /// Free text for reviewers.
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameMapping {
    name: String,
    #[serde(default)]
    ports: Option<Vec<u16>>,
    #[serde(default)]
    protocol: Protocols,
    /// Answers may resolve to private, loopback, link-local or metadata
    /// addresses (exempt from the DNS rebinding guard).
    #[serde(default)]
    allow_private: bool,
    /// Accept a pattern as broad as a public suffix (`*.com`).
    #[serde(default)]
    force: bool,
    #[serde(default)]
    description: Option<String>,
}

/// An entry written as a string (the short form) or as a mapping.
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrMap {
    Text(String),
    Map(serde_json::Value),
}

impl<'de> Deserialize<'de> for NameEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match TextOrMap::deserialize(d)? {
            TextOrMap::Text(s) => Ok(NameEntry {
                rule: NameRule::parse(&s, Breadth::Strict).map_err(de::Error::custom)?,
                description: None,
            }),
            TextOrMap::Map(v) => {
                let m: NameMapping = serde_json::from_value(v).map_err(de::Error::custom)?;
                let breadth = if m.force {
                    Breadth::Forced
                } else {
                    Breadth::Strict
                };
                let pattern = NamePattern::parse(&m.name, breadth).map_err(de::Error::custom)?;
                if m.ports
                    .as_ref()
                    .is_some_and(|p| p.is_empty() || p.contains(&0))
                {
                    return Err(de::Error::custom(format!(
                        "`{}`: ports must be a non-empty list of ports 1-65535 (leave `ports` out for every port but 853)",
                        m.name
                    )));
                }
                let mut rule = NameRule::new(pattern);
                rule.ports = m.ports;
                rule.protocols = m.protocol;
                rule.allow_private = m.allow_private;
                Ok(NameEntry {
                    rule,
                    description: m.description,
                })
            }
        }
    }
}

/// `egress:` — what the agent may reach, in a policy file and in a tier
/// policy document alike.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSection {
    /// `allow:` — addresses and networks, enforced in the kernel.
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
    /// `names:` — host names and patterns, enforced by the sidecar's
    /// resolver and proxies.
    #[serde(default)]
    pub names: Vec<NameEntry>,
}

/// One `egress.allow` entry: a bare target string or a mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct AllowEntry {
    /// Destination.
    pub target: Target,
    /// Protocols (default: TCP and UDP).
    pub protocol: Protocols,
    /// Free text for reviewers.
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowMapping {
    target: TargetText,
    #[serde(default)]
    protocol: Protocols,
    #[serde(default)]
    description: Option<String>,
}

struct TargetText(Target);

impl<'de> Deserialize<'de> for TargetText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(TargetText).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for AllowEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match TextOrMap::deserialize(d)? {
            TextOrMap::Text(s) => Ok(AllowEntry {
                target: s.parse().map_err(de::Error::custom)?,
                protocol: Protocols::Any,
                description: None,
            }),
            TextOrMap::Map(v) => {
                let m: AllowMapping = serde_json::from_value(v).map_err(de::Error::custom)?;
                Ok(AllowEntry {
                    target: m.target.0,
                    protocol: m.protocol,
                    description: m.description,
                })
            }
        }
    }
}

/// A policy file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not match the format.
    #[error("invalid policy file {path}{location}: {message}; see docs/policy.md for the format")]
    Invalid {
        /// File path.
        path: PathBuf,
        /// ` at line L column C`, when known.
        location: String,
        /// What is wrong.
        message: String,
    },
}

impl PolicyFile {
    /// Parses policy text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PolicyError> {
        let invalid = |location: String, message: String| PolicyError::Invalid {
            path: path.to_path_buf(),
            location,
            message,
        };
        let file: PolicyFile = crate::yaml::from_str(text).map_err(|e| {
            let location = if e.line > 0 {
                format!(" at line {} column {}", e.line, e.column)
            } else {
                String::new()
            };
            invalid(location, e.message)
        })?;
        if file.version != 1 {
            return Err(invalid(
                String::new(),
                format!(
                    "unsupported version {} (this agent-sidecar reads version 1)",
                    file.version
                ),
            ));
        }
        Ok(file)
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// The file's egress rules, tagged with their origin.
    /// The name rules, each tagged with its file and position.
    pub fn name_rules(&self, path: &Path) -> Vec<NameRule> {
        self.egress
            .names
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let mut rule = entry.rule.clone();
                rule.source = Some(RuleSource::PolicyName {
                    file: path.display().to_string(),
                    index: i + 1,
                });
                rule
            })
            .collect()
    }

    /// The address rules, each tagged with its file and position.
    pub fn allowlist(&self, path: &Path) -> Allowlist {
        let mut list = Allowlist::new();
        for (i, entry) in self.egress.allow.iter().enumerate() {
            list.push(EgressRule {
                target: entry.target,
                protocols: entry.protocol,
                source: RuleSource::Policy {
                    file: path.display().to_string(),
                    index: i + 1,
                },
            });
        }
        list
    }
}

/// Loads every file and merges their allowlists in order: addresses, and
/// names.
pub fn load_policy_files(paths: &[PathBuf]) -> Result<(Allowlist, NameAllowlist), PolicyError> {
    let mut list = Allowlist::new();
    let mut names = NameAllowlist::new();
    for path in paths {
        let file = PolicyFile::load(path)?;
        list.extend(file.allowlist(path));
        for rule in file.name_rules(path) {
            names.push(rule);
        }
    }
    Ok((list, names))
}

// The JSON Schema of the `egress:` section, part of the published schema
// of tier policy documents.

impl JsonSchema for EgressSection {
    fn schema_name() -> std::borrow::Cow<'static, str> {
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
    fn schema_name() -> std::borrow::Cow<'static, str> {
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
    fn schema_name() -> std::borrow::Cow<'static, str> {
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
    fn schema_name() -> std::borrow::Cow<'static, str> {
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
