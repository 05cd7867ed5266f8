//! The YAML policy file:
//!
//! ```yaml
//! version: 1
//! egress:
//!   allow:
//!     - 10.0.0.0/8:5432
//!     - target: "[2001:db8::1]:443"
//!       protocol: tcp
//!       description: payments API
//! ```
//!
//! Unknown keys are errors; every error names the file, line and column.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, de};

use crate::egress::{Allowlist, EgressRule, Protocols, RuleSource, Target};

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

/// `egress:` — what the agent may reach.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSection {
    /// `allow:` — the allowlist.
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
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
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Map(serde_yaml_ng::Value),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => Ok(AllowEntry {
                target: s.parse().map_err(de::Error::custom)?,
                protocol: Protocols::Any,
                description: None,
            }),
            Raw::Map(v) => {
                let m: AllowMapping = serde_yaml_ng::from_value(v).map_err(de::Error::custom)?;
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
        let file: PolicyFile = serde_yaml_ng::from_str(text).map_err(|e| {
            let location = e
                .location()
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            // serde_yaml_ng appends "at line L column C" itself; keep one copy.
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(i) if !location.is_empty() => message[..i].to_string(),
                _ => message,
            };
            invalid(location, message)
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

/// Loads every file and merges their allowlists in order.
pub fn load_policy_files(paths: &[PathBuf]) -> Result<Allowlist, PolicyError> {
    let mut list = Allowlist::new();
    for path in paths {
        list.extend(PolicyFile::load(path)?.allowlist(path));
    }
    Ok(list)
}

#[cfg(test)]
mod tests;
