//! The YAML format of tier policy documents. A policy set is a directory of
//! documents, each with a `kind`:
//!
//! - `base` — the organisation: label, environments, currency, vocabulary,
//!   defaults, tools, rules, egress allowlist. Exactly one per set.
//! - `team` — a team's tools, rules, egress and defaults; child of the base.
//! - `role` — tools and rules shared by agents across teams; child of the base.
//! - `agent` — one agent's identity (owner, team, roles, purpose), its own
//!   tools, rules, egress and defaults; child of its team and roles.
//! - `overlay` — rules and defaults for one environment (`prod`...), applied
//!   to every agent running there; child of the base.
//!
//! Unknown keys are errors. See `docs/policy.md` and `docs/policy.schema.json`.

mod rules;
mod tools;

use std::{collections::BTreeMap, sync::Arc};

use schemars::JsonSchema;
use serde::Deserialize;

pub use rules::{RangeMatch, RuleDecl, SetMatch, When};
pub use tools::{
    ActionDecl, AttributeSources, CompensationDecl, CredentialDecl, HttpMatch, McpMatch,
    RedactDecl, RedactMethod, Source, ToolDecl,
};

use super::{
    detection::DetectionSection,
    error::Problem,
    location::{Location, Positions},
    tier::Tier,
};
use crate::egress::EgressSection;

/// The kind of a document: its level in the hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The organisation.
    Base,
    /// A team.
    Team,
    /// A role.
    Role,
    /// An agent.
    Agent,
    /// An environment overlay.
    Overlay,
}

impl Kind {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Base => "base",
            Kind::Team => "team",
            Kind::Role => "role",
            Kind::Agent => "agent",
            Kind::Overlay => "overlay",
        }
    }
}

macro_rules! kind_tag {
    ($name:ident, $s:literal) => {
        #[doc = concat!("`kind: ", $s, "`.")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
        pub enum $name {
            #[doc = concat!("`", $s, "`")]
            #[serde(rename = $s)]
            Tag,
        }
    };
}

kind_tag!(BaseTag, "base");
kind_tag!(TeamTag, "team");
kind_tag!(RoleTag, "role");
kind_tag!(AgentTag, "agent");
kind_tag!(OverlayTag, "overlay");

/// Default tiers. A child may only raise them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Tier for actions of undeclared tools or actions, unknown agents and
    /// unknown environments. Built-in: 3 (fail closed).
    #[serde(default)]
    pub unknown: Option<Tier>,
    /// Tier floor when a declared attribute cannot be extracted from the
    /// request (or names an unknown class or currency). Built-in: 3.
    #[serde(default)]
    pub missing_attribute: Option<Tier>,
    /// Baseline tier of declared actions that set no `tier` of their own.
    /// Built-in: 1.
    #[serde(default)]
    pub action: Option<Tier>,
}

/// The classes attributes may take. Only the base document sets them.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vocabulary {
    /// Data sensitivity classes (at most 64).
    #[serde(default = "default_sensitivity")]
    pub sensitivity: Vec<String>,
    /// Regulatory scopes (at most 64).
    #[serde(default = "default_regulatory")]
    pub regulatory: Vec<String>,
}

impl Default for Vocabulary {
    fn default() -> Self {
        Vocabulary {
            sensitivity: default_sensitivity(),
            regulatory: default_regulatory(),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn default_sensitivity() -> Vec<String> {
    strings(&["public", "internal", "confidential", "pii", "phi", "pci"])
}

fn default_regulatory() -> Vec<String> {
    strings(&["eu-ai-act-high-risk", "gdpr", "sox", "hipaa", "pci-dss"])
}

fn default_environments() -> Vec<String> {
    strings(&["dev", "staging", "prod"])
}

fn default_currency() -> String {
    "USD".into()
}

/// `kind: base` — the organisation's policy, root of the hierarchy.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaseDoc {
    /// `base`.
    pub kind: BaseTag,
    /// Organisation name.
    pub name: String,
    /// Human version label carried by every decision with the content hash.
    pub label: String,
    /// Free text for reviewers.
    #[serde(default)]
    pub description: Option<String>,
    /// Environments agents may run in; overlays name one of them.
    #[serde(default = "default_environments")]
    pub environments: Vec<String>,
    /// Currency of every `amount` threshold (ISO 4217).
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Units of `currency` per unit of another currency, for amounts
    /// requested in it (`EUR: 1.08`). Amounts in other currencies are
    /// treated as missing (fail closed).
    #[serde(default)]
    pub exchange_rates: BTreeMap<String, f64>,
    /// Sensitivity classes and regulatory scopes.
    #[serde(default)]
    pub vocabulary: Vocabulary,
    /// Default tiers.
    #[serde(default)]
    pub defaults: Defaults,
    /// Tools every agent may be recognised using.
    #[serde(default)]
    pub tools: Vec<ToolDecl>,
    /// Rules for every agent.
    #[serde(default)]
    pub rules: Vec<RuleDecl>,
    /// The organisation's egress allowlist: the widest any agent may have.
    #[serde(default)]
    pub egress: Option<EgressSection>,
    /// Behavioural detection: learning, thresholds, responses (see
    /// `docs/alerts.md`).
    #[serde(default)]
    pub detection: Option<DetectionSection>,
    /// Quotas and cumulative limits (see `docs/quotas.md`).
    #[serde(default)]
    pub quotas: Vec<super::quota::QuotaDecl>,
    /// Who may decide held actions: ordered steps with ceilings,
    /// escalation, four-eyes, owner exclusion (see `docs/approvals.md`).
    #[serde(default)]
    pub approval_chains: Vec<super::approval_chain::ChainSpec>,
    /// Which just-in-time grants may exist at all (see `docs/grants.md`);
    /// none when absent.
    #[serde(default)]
    pub grantable: Vec<super::grantable::GrantableDecl>,
}

/// `kind: team`.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamDoc {
    /// `team`.
    pub kind: TeamTag,
    /// Team name, referenced by agents' `team`.
    pub name: String,
    /// Free text for reviewers.
    #[serde(default)]
    pub description: Option<String>,
    /// Default tiers (may only raise the base's).
    #[serde(default)]
    pub defaults: Defaults,
    /// Tools of this team's agents.
    #[serde(default)]
    pub tools: Vec<ToolDecl>,
    /// Rules for this team's agents.
    #[serde(default)]
    pub rules: Vec<RuleDecl>,
    /// Egress allowlist of the team's agents; within the base's.
    #[serde(default)]
    pub egress: Option<EgressSection>,
    /// Behavioural detection: learning, thresholds, responses (see
    /// `docs/alerts.md`).
    #[serde(default)]
    pub detection: Option<DetectionSection>,
    /// Quotas and cumulative limits (see `docs/quotas.md`).
    #[serde(default)]
    pub quotas: Vec<super::quota::QuotaDecl>,
    /// Who may decide held actions: ordered steps with ceilings,
    /// escalation, four-eyes, owner exclusion (see `docs/approvals.md`).
    #[serde(default)]
    pub approval_chains: Vec<super::approval_chain::ChainSpec>,
}

/// `kind: role`.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDoc {
    /// `role`.
    pub kind: RoleTag,
    /// Role name, referenced by agents' `roles`.
    pub name: String,
    /// Free text for reviewers.
    #[serde(default)]
    pub description: Option<String>,
    /// Tools of agents with this role.
    #[serde(default)]
    pub tools: Vec<ToolDecl>,
    /// Rules for agents with this role.
    #[serde(default)]
    pub rules: Vec<RuleDecl>,
}

/// `kind: agent`.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentDoc {
    /// `agent`.
    pub kind: AgentTag,
    /// Agent id, as the sidecar knows the agent.
    pub id: String,
    /// Accountable owner (a person, who is paged and approves changes).
    pub owner: String,
    /// Business purpose.
    pub purpose: String,
    /// Team (a `kind: team` document's `name`).
    #[serde(default)]
    pub team: Option<String>,
    /// Roles (`kind: role` documents' `name`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Free text for reviewers.
    #[serde(default)]
    pub description: Option<String>,
    /// Default tiers (may only raise the team's and base's).
    #[serde(default)]
    pub defaults: Defaults,
    /// Tools only this agent uses.
    #[serde(default)]
    pub tools: Vec<ToolDecl>,
    /// Rules for this agent.
    #[serde(default)]
    pub rules: Vec<RuleDecl>,
    /// The agent's egress allowlist; within its team's (or the base's).
    #[serde(default)]
    pub egress: Option<EgressSection>,
    /// Behavioural detection: learning, thresholds, responses (see
    /// `docs/alerts.md`).
    #[serde(default)]
    pub detection: Option<DetectionSection>,
    /// Quotas and cumulative limits (see `docs/quotas.md`).
    #[serde(default)]
    pub quotas: Vec<super::quota::QuotaDecl>,
    /// Delegation between agents (see `docs/delegation.md`).
    #[serde(default)]
    pub delegation: Option<super::delegation::DelegationSection>,
}

/// `kind: overlay`.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverlayDoc {
    /// `overlay`.
    pub kind: OverlayTag,
    /// The environment it applies to (one of the base's `environments`).
    pub environment: String,
    /// Free text for reviewers.
    #[serde(default)]
    pub description: Option<String>,
    /// Default tiers in this environment (may only raise the base's).
    #[serde(default)]
    pub defaults: Defaults,
    /// Rules for every agent in this environment.
    #[serde(default)]
    pub rules: Vec<RuleDecl>,
}

/// A parsed document.
#[derive(Clone, Debug, PartialEq)]
pub enum Document {
    /// `kind: base`.
    Base(BaseDoc),
    /// `kind: team`.
    Team(TeamDoc),
    /// `kind: role`.
    Role(RoleDoc),
    /// `kind: agent`.
    Agent(AgentDoc),
    /// `kind: overlay`.
    Overlay(OverlayDoc),
}

impl Document {
    /// The document's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Document::Base(_) => Kind::Base,
            Document::Team(_) => Kind::Team,
            Document::Role(_) => Kind::Role,
            Document::Agent(_) => Kind::Agent,
            Document::Overlay(_) => Kind::Overlay,
        }
    }

    /// The document's name: organisation, team, role, agent id or environment.
    pub fn name(&self) -> &str {
        match self {
            Document::Base(d) => &d.name,
            Document::Team(d) => &d.name,
            Document::Role(d) => &d.name,
            Document::Agent(d) => &d.id,
            Document::Overlay(d) => &d.environment,
        }
    }

    /// The YAML key holding the name.
    pub fn name_key(&self) -> &'static str {
        match self {
            Document::Agent(_) => "id",
            Document::Overlay(_) => "environment",
            _ => "name",
        }
    }

    /// Declared tools.
    pub fn tools(&self) -> &[ToolDecl] {
        match self {
            Document::Base(d) => &d.tools,
            Document::Team(d) => &d.tools,
            Document::Role(d) => &d.tools,
            Document::Agent(d) => &d.tools,
            Document::Overlay(_) => &[],
        }
    }

    /// Rules.
    pub fn rules(&self) -> &[RuleDecl] {
        match self {
            Document::Base(d) => &d.rules,
            Document::Team(d) => &d.rules,
            Document::Role(d) => &d.rules,
            Document::Agent(d) => &d.rules,
            Document::Overlay(d) => &d.rules,
        }
    }

    /// Default tiers set by this document.
    pub fn defaults(&self) -> Option<&Defaults> {
        match self {
            Document::Base(d) => Some(&d.defaults),
            Document::Team(d) => Some(&d.defaults),
            Document::Agent(d) => Some(&d.defaults),
            Document::Overlay(d) => Some(&d.defaults),
            Document::Role(_) => None,
        }
    }

    /// The detection section, if the document declares one.
    pub fn detection(&self) -> Option<&DetectionSection> {
        match self {
            Document::Base(d) => d.detection.as_ref(),
            Document::Team(d) => d.detection.as_ref(),
            Document::Agent(d) => d.detection.as_ref(),
            Document::Role(_) | Document::Overlay(_) => None,
        }
    }

    /// The approval chains the document declares (base and team only).
    pub fn approval_chains(&self) -> &[super::approval_chain::ChainSpec] {
        match self {
            Document::Base(d) => &d.approval_chains,
            Document::Team(d) => &d.approval_chains,
            Document::Agent(_) | Document::Role(_) | Document::Overlay(_) => &[],
        }
    }

    /// The quotas the document declares.
    pub fn quotas(&self) -> &[super::quota::QuotaDecl] {
        match self {
            Document::Base(d) => &d.quotas,
            Document::Team(d) => &d.quotas,
            Document::Agent(d) => &d.quotas,
            Document::Role(_) | Document::Overlay(_) => &[],
        }
    }

    /// The egress section, if the document declares one.
    pub fn egress(&self) -> Option<&EgressSection> {
        match self {
            Document::Base(d) => d.egress.as_ref(),
            Document::Team(d) => d.egress.as_ref(),
            Document::Agent(d) => d.egress.as_ref(),
            Document::Role(_) | Document::Overlay(_) => None,
        }
    }
}

/// A document with the positions of its nodes.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) doc: Document,
    pub(crate) positions: Positions,
}

impl Parsed {
    /// The location of the node at `path`.
    pub(crate) fn at(&self, path: &str) -> Location {
        self.positions.at(path)
    }
}

const KINDS: &str = "base, team, role, agent or overlay";

/// The `kind` of a YAML text, if it is a mapping with a known `kind`: how
/// tier policy documents are told apart from other YAML files.
pub fn document_kind(text: &str) -> Option<Kind> {
    serde_json::from_value(head(text)?.kind?).ok()
}

/// The one key read before the document's type is known.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(default)]
    kind: Option<serde_json::Value>,
}

/// The `kind` of a mapping (`None` for a text that is not one).
fn head(text: &str) -> Option<Head> {
    crate::yaml::from_str::<Option<Head>>(text).ok().flatten()
}

/// Parses one document. `file` names it in errors.
pub(crate) fn parse(file: Arc<str>, text: &str) -> Result<Parsed, Problem> {
    let positions = Positions::index(file.clone(), text);
    // Syntax first: a text that is not YAML is reported as such.
    crate::yaml::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| serde_problem(&file, None, e))?;
    let Some(kind) = head(text).and_then(|h| h.kind) else {
        return Err(Problem::new(
            positions.at(""),
            "the document has no `kind`",
            format!(
                "start it with `kind: KIND` where KIND is {KINDS}; files under a `tests/` directory are fixtures and are not read as policy"
            ),
        ));
    };
    let kind: Kind = serde_json::from_value(kind.clone()).map_err(|_| {
        Problem::new(
            positions.at("kind"),
            format!("unknown kind {}", short_value(&kind)),
            format!("write `kind: KIND` where KIND is {KINDS}"),
        )
    })?;
    let typed = |e| serde_problem(&file, Some(kind), e);
    let doc = match kind {
        Kind::Base => Document::Base(crate::yaml::from_str(text).map_err(typed)?),
        Kind::Team => Document::Team(crate::yaml::from_str(text).map_err(typed)?),
        Kind::Role => Document::Role(crate::yaml::from_str(text).map_err(typed)?),
        Kind::Agent => Document::Agent(crate::yaml::from_str(text).map_err(typed)?),
        Kind::Overlay => Document::Overlay(crate::yaml::from_str(text).map_err(typed)?),
    };
    Ok(Parsed { doc, positions })
}

fn short_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn serde_problem(file: &Arc<str>, kind: Option<Kind>, e: crate::yaml::YamlError) -> Problem {
    let location = Location {
        file: file.clone(),
        line: e.line,
        column: e.column,
    };
    let message = e.message;
    let what = kind.map(|k| format!("`kind: {}` documents", k.as_str()));
    let what = what.as_deref().unwrap_or("policy documents");
    let help = if message.contains("unknown field") {
        format!(
            "remove the key or correct its spelling; the keys allowed here are listed above (see docs/policy.md for {what})"
        )
    } else if message.contains("missing field") {
        format!("add the field (see docs/policy.md for {what})")
    } else if message.contains("duplicate") {
        "write each key once: a repeated key would silently replace the first".to_string()
    } else {
        format!("see docs/policy.md for the format of {what}")
    };
    Problem::new(location, message, help)
}

#[cfg(test)]
mod tests;
