//! The fleet-controls file: the kill switches every sidecar follows.
//!
//! ```yaml
//! kill_switches:
//!   - id: ks-payments-2026-12-04
//!     scope: {team: payments}        # or agent, instance, role, environment; or {fleet: true}
//!     reason: refunds to unknown accounts
//!     by: soc-oncall@example.com
//! ```

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::identity::FleetIdentity;

/// Who a kill switch stops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Scope {
    /// One agent, by id.
    Agent(String),
    /// One instance (replica), by instance id.
    Instance(String),
    /// Every agent of a team.
    Team(String),
    /// Every agent holding a role.
    Role(String),
    /// Every agent of an environment (`prod`...).
    Environment(String),
    /// Every agent (`{fleet: true}`).
    Fleet(bool),
}

impl Scope {
    /// Whether `who` is in this scope.
    pub fn covers(&self, who: &FleetIdentity) -> bool {
        match self {
            Scope::Agent(a) => *a == who.agent_id,
            Scope::Instance(i) => *i == who.instance_id,
            Scope::Team(t) => who.team.as_deref() == Some(t.as_str()),
            Scope::Role(r) => who.roles.iter().any(|x| x == r),
            Scope::Environment(e) => *e == who.environment,
            Scope::Fleet(on) => *on,
        }
    }

    /// `team=payments`, `fleet`: for logs, metrics and the CLI.
    pub fn label(&self) -> String {
        match self {
            Scope::Agent(v) => format!("agent={v}"),
            Scope::Instance(v) => format!("instance={v}"),
            Scope::Team(v) => format!("team={v}"),
            Scope::Role(v) => format!("role={v}"),
            Scope::Environment(v) => format!("environment={v}"),
            Scope::Fleet(_) => "fleet".to_string(),
        }
    }

    /// The scope's kind (a metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Agent(_) => "agent",
            Scope::Instance(_) => "instance",
            Scope::Team(_) => "team",
            Scope::Role(_) => "role",
            Scope::Environment(_) => "environment",
            Scope::Fleet(_) => "fleet",
        }
    }

    /// Parses `KIND=VALUE` or `fleet` (the CLI's `--scope`).
    pub fn parse(text: &str) -> Result<Scope, String> {
        let text = text.trim();
        if text == "fleet" {
            return Ok(Scope::Fleet(true));
        }
        let (kind, value) = text.split_once('=').ok_or_else(|| {
            format!("scope `{text}`: write KIND=VALUE (agent, instance, team, role, environment) or `fleet`")
        })?;
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(format!("scope `{text}`: the value is empty"));
        }
        Ok(match kind.trim() {
            "agent" => Scope::Agent(value),
            "instance" => Scope::Instance(value),
            "team" => Scope::Team(value),
            "role" => Scope::Role(value),
            "environment" => Scope::Environment(value),
            other => {
                return Err(format!(
                    "scope kind `{other}` is unknown: use agent, instance, team, role, environment or fleet"
                ));
            }
        })
    }
}

/// One kill switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillSwitch {
    /// Unique id (letters, digits, `-`, `_`, `.`; at most 128).
    pub id: String,
    /// Who it stops.
    pub scope: Scope,
    /// Why (told to the agent in each refusal, and to the SOC).
    pub reason: String,
    /// Who tripped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When it was tripped (RFC 3339 or free text; informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// The fleet-controls file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Controls {
    /// The kill switches in force.
    #[serde(default)]
    pub kill_switches: Vec<KillSwitch>,
}

/// Why the fleet-controls file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ControlsError {
    /// It could not be read.
    #[error("cannot read the fleet-controls file {}: {source}; create it (an empty list is `kill_switches: []`) or fix --fleet-controls", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// It is not a valid controls document.
    #[error("fleet-controls file {}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, where, how to fix it.
        message: String,
    },
}

/// A valid switch id.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Controls {
    /// Parses `text` (read from `path`, for errors).
    pub fn parse(path: &Path, text: &str) -> Result<Controls, ControlsError> {
        let invalid = |message: String| ControlsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let controls: Controls = if text.trim().is_empty() {
            Controls::default()
        } else {
            crate::yaml::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        let mut seen = std::collections::HashSet::new();
        for (i, k) in controls.kill_switches.iter().enumerate() {
            if !valid_id(&k.id) {
                return Err(invalid(format!(
                    "kill_switches[{i}].id `{}`: use 1-128 letters, digits, `-`, `_` or `.`",
                    k.id
                )));
            }
            if !seen.insert(k.id.as_str()) {
                return Err(invalid(format!(
                    "kill_switches[{i}].id `{}` is used twice; give each switch its own id",
                    k.id
                )));
            }
            if k.reason.trim().is_empty() {
                return Err(invalid(format!(
                    "kill_switches[{i}] (`{}`) has no reason; say why (the agent and the SOC are told)",
                    k.id
                )));
            }
            if k.scope == Scope::Fleet(false) {
                return Err(invalid(format!(
                    "kill_switches[{i}] (`{}`): `fleet: false` stops nobody; remove the switch instead",
                    k.id
                )));
            }
        }
        Ok(controls)
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<(Controls, Vec<u8>), ControlsError> {
        let bytes = std::fs::read(path).map_err(|source| ControlsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| ControlsError::Invalid {
            path: path.to_path_buf(),
            message: format!("not UTF-8 ({e})"),
        })?;
        Ok((Controls::parse(path, text)?, bytes))
    }
}
