//! The compiled policy set: immutable, indexed for decisions, carrying its
//! version and the files it was compiled from.

use std::{collections::HashMap, sync::Arc};

use super::{
    action::AgentIdentity, condition::Condition, document::Kind, location::Location,
    source::Snapshot, tier::Tier, version::PolicyVersion,
};
use crate::{
    egress::{Allowlist, NameRule},
    policy::{
        gateway::GatewayTable,
        tools::{ActionInfo, Tool},
    },
};

/// Index of a tool in [`CompiledPolicySet`].
pub(crate) type ToolId = u32;
/// Index of an action (over all tools).
pub(crate) type ActionId = u32;
/// Index of a rule.
pub(crate) type RuleId = u32;
/// Index of a scope (one document's rules).
pub(crate) type ScopeId = u32;

/// Currency, exchange rates and class names of a set.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Vocab {
    pub(crate) currency: Arc<str>,
    /// Upper-case code -> units of `currency`; holds `currency` itself.
    pub(crate) rates: HashMap<String, f64>,
    pub(crate) sensitivity: Vec<Arc<str>>,
    pub(crate) regulatory: Vec<Arc<str>>,
}

impl Vocab {
    /// Units of the base currency per unit of `code`.
    pub(crate) fn rate(&self, code: &str) -> Option<f64> {
        if code.eq_ignore_ascii_case(&self.currency) {
            return Some(1.0);
        }
        self.rates.get(&code.to_ascii_uppercase()).copied()
    }
}

/// Names of tools, actions and classes, for descriptions.
pub(crate) struct Ids<'a> {
    pub(crate) tools: &'a [Tool],
    pub(crate) actions: &'a [ActionInfo],
    pub(crate) vocab: &'a Vocab,
}

impl Ids<'_> {
    pub(crate) fn tool_name(&self, t: u32) -> &str {
        &self.tools[t as usize].name
    }

    pub(crate) fn action_name(&self, a: u32) -> &str {
        &self.actions[a as usize].qualified
    }
}

/// A tier that applies without a rule: a default or an action's baseline,
/// with where it was set.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Floor {
    pub(crate) tier: Tier,
    /// Pseudo rule id: `defaults.unknown`, `defaults.missing_attribute`,
    /// `defaults.action` or `tools.TOOL.actions.ACTION`.
    pub(crate) id: Arc<str>,
    /// The level that set it (`base acme`, `team finance`...).
    pub(crate) level: Arc<str>,
    /// `file:line:col`, or `built-in`.
    pub(crate) source: Arc<str>,
}

/// The built-in defaults: unknown 3, missing attribute 3, action 1.
pub(crate) fn built_in(field: usize) -> Tier {
    [Tier::Approval, Tier::Approval, Tier::Autonomous][field]
}

/// The names of the default fields, in `floors` order.
pub(crate) const DEFAULT_FIELDS: [&str; 3] = ["unknown", "missing_attribute", "action"];

/// The default tiers in force for one agent (or overlay).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EffectiveDefaults {
    pub(crate) unknown: Floor,
    pub(crate) missing_attribute: Floor,
    pub(crate) action: Floor,
}

/// An overlay's own defaults: only those it sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct OverlayDefaults {
    pub(crate) unknown: Option<Floor>,
    pub(crate) missing_attribute: Option<Floor>,
    pub(crate) action: Option<Floor>,
}

/// A compiled rule.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rule {
    pub(crate) id: Arc<str>,
    pub(crate) scope: ScopeId,
    pub(crate) tier: Tier,
    pub(crate) cond: Condition,
    pub(crate) description: Option<Arc<str>>,
    /// The parent rule this one tightens.
    pub(crate) overrides: Option<RuleId>,
    pub(crate) location: Location,
    /// `location` as text, shared with decisions.
    pub(crate) source: Arc<str>,
    /// `cond` described (`tool erp, amount > 500 USD`).
    pub(crate) summary: Arc<str>,
    /// Tier 4: quarantine the agent too.
    pub(crate) quarantine: bool,
}

/// The rules of one document, indexed by what they select.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Scope {
    pub(crate) kind: Option<Kind>,
    /// Document name.
    pub(crate) name: Arc<str>,
    /// `team finance`, `overlay prod`...
    pub(crate) level: Arc<str>,
    /// The document's file.
    pub(crate) file: Arc<str>,
    /// Rules with no tool condition.
    pub(crate) global: Box<[RuleId]>,
    /// Rules with a tool but no action condition, sorted by tool.
    pub(crate) by_tool: Box<[(ToolId, Box<[RuleId]>)]>,
    /// Rules with an action condition, sorted by action.
    pub(crate) by_action: Box<[(ActionId, Box<[RuleId]>)]>,
}

impl Scope {
    /// The rules that may apply to an action of `tool` (`action` if known).
    #[inline]
    pub(crate) fn candidates(
        &self,
        tool: Option<ToolId>,
        action: Option<ActionId>,
    ) -> impl Iterator<Item = RuleId> + '_ {
        fn find(list: &[(u32, Box<[RuleId]>)], key: Option<u32>) -> &[RuleId] {
            match key {
                Some(k) => match list.binary_search_by_key(&k, |(id, _)| *id) {
                    Ok(i) => &list[i].1,
                    Err(_) => &[],
                },
                None => &[],
            }
        }
        self.global
            .iter()
            .chain(find(&self.by_tool, tool))
            .chain(find(&self.by_action, action))
            .copied()
    }
}

/// A declared agent.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Agent {
    pub(crate) id: Arc<str>,
    pub(crate) owner: Arc<str>,
    pub(crate) purpose: Arc<str>,
    pub(crate) team: Option<Arc<str>>,
    pub(crate) roles: Vec<Arc<str>>,
    /// Base, team, roles, agent: the scopes whose rules apply.
    pub(crate) scopes: Box<[ScopeId]>,
    pub(crate) defaults: EffectiveDefaults,
    pub(crate) egress: Allowlist,
    pub(crate) egress_names: Vec<NameRule>,
}

/// A compiled, validated policy set. Immutable; share it in an `Arc` and
/// call [`decide`](CompiledPolicySet::decide) from any thread.
#[derive(Debug)]
pub struct CompiledPolicySet {
    pub(crate) version: PolicyVersion,
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) vocab: Vocab,
    pub(crate) environments: Vec<Arc<str>>,
    pub(crate) tools: Vec<Tool>,
    pub(crate) tool_names: HashMap<Arc<str>, ToolId>,
    pub(crate) hosts: HashMap<String, ToolId>,
    pub(crate) mcp_servers: HashMap<String, ToolId>,
    pub(crate) actions: Vec<ActionInfo>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) agents: HashMap<Arc<str>, Agent>,
    /// Used for agents the set does not declare: base rules only.
    pub(crate) unknown_agent: Agent,
    pub(crate) overlays: HashMap<Arc<str>, (ScopeId, OverlayDefaults)>,
    pub(crate) gateway: GatewayTable,
}

/// Counts, for `policy check` and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetSummary {
    /// Documents.
    pub documents: usize,
    /// Declared tools.
    pub tools: usize,
    /// Declared actions.
    pub actions: usize,
    /// Rules.
    pub rules: usize,
    /// Declared agents.
    pub agents: usize,
    /// Environment overlays.
    pub overlays: usize,
}

impl CompiledPolicySet {
    /// The version every decision carries.
    pub fn version(&self) -> &PolicyVersion {
        &self.version
    }

    /// The files the set was compiled from (write them out with
    /// [`Snapshot::write_to`] to keep the version loadable).
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Counts of what the set holds.
    pub fn summary(&self) -> SetSummary {
        SetSummary {
            documents: self.snapshot.files.len(),
            tools: self.tools.len(),
            actions: self.actions.len(),
            rules: self.rules.len(),
            agents: self.agents.len(),
            overlays: self.overlays.len(),
        }
    }

    /// The identity of agent `id` in `environment`, with owner, team and
    /// purpose from its document (only `id` and `environment` if the set
    /// does not declare it).
    pub fn identity(&self, id: &str, environment: &str) -> AgentIdentity {
        let agent = self.agents.get(id);
        AgentIdentity {
            id: id.to_string(),
            environment: environment.to_string(),
            owner: agent.map(|a| a.owner.to_string()),
            team: agent.and_then(|a| a.team.as_ref().map(|t| t.to_string())),
            purpose: agent.map(|a| a.purpose.to_string()),
        }
    }

    /// The egress allowlist of agent `id`: from its own document, else its
    /// team's, else the base's; `None` for an undeclared agent.
    pub fn egress_allowlist(&self, id: &str) -> Option<&Allowlist> {
        self.agents.get(id).map(|a| &a.egress)
    }

    /// The name rules of agent `id`'s egress (same document as
    /// [`egress_allowlist`](Self::egress_allowlist)).
    pub fn egress_names(&self, id: &str) -> Option<&[NameRule]> {
        self.agents.get(id).map(|a| a.egress_names.as_slice())
    }

    /// Declared agent ids, sorted.
    pub fn agent_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.agents.keys().map(|k| k.as_ref()).collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn ids(&self) -> Ids<'_> {
        Ids {
            tools: &self.tools,
            actions: &self.actions,
            vocab: &self.vocab,
        }
    }
}
