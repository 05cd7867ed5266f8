//! The compiled policy set: immutable, indexed for decisions, carrying its
//! version and the files it was compiled from.

use std::{collections::HashMap, sync::Arc};

use super::{
    action::AgentIdentity,
    condition::Condition,
    defaults::{EffectiveDefaults, OverlayDefaults},
    detection::DetectionPolicy,
    document::Kind,
    gateway_table::GatewayTable,
    index::{ActionId, RuleId, ScopeId, ToolId},
    location::Location,
    names::Ids,
    source::Snapshot,
    tier::Tier,
    tool::{ActionInfo, Tool},
    version::PolicyVersion,
    vocab::Vocab,
};
use crate::egress::{Allowlist, NameRule};

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
    /// Behavioural detection settings (base, team, roles, agent).
    pub(crate) detection: Arc<DetectionPolicy>,
    /// Quotas of the base, team and agent documents.
    pub(crate) quotas: Vec<super::quota::QuotaDecl>,
    /// Approval chains: the team's, then the base's (the first that
    /// matches a held action decides who may approve it).
    pub(crate) approval_chains: Vec<super::approval_chain::ChainSpec>,
    /// The base's `grantable:` entries that select the agent.
    pub(crate) grantable: Vec<super::grantable::GrantableDecl>,
    /// The agent's `delegation:` section, checked.
    pub(crate) delegation: Option<Arc<super::delegation::CompiledDelegation>>,
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
    /// The roles the set gives agent `id` (none for an undeclared agent).
    pub fn agent_roles(&self, id: &str) -> Vec<String> {
        self.agents
            .get(id)
            .map(|a| a.roles.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default()
    }

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

    /// The approval chains that apply to agent `id`, most specific first
    /// (its team's, then the base's).
    pub fn approval_chains(&self, id: &str) -> &[super::approval_chain::ChainSpec] {
        &self
            .agents
            .get(id)
            .unwrap_or(&self.unknown_agent)
            .approval_chains
    }

    /// The `grantable:` entries that select agent `id` (none for an
    /// unknown agent).
    pub fn grantable(&self, id: &str) -> &[super::grantable::GrantableDecl] {
        &self.agents.get(id).unwrap_or(&self.unknown_agent).grantable
    }

    /// Agent `id`'s `delegation:` section (none for an undeclared agent).
    pub fn delegation(&self, id: &str) -> Option<&Arc<super::delegation::CompiledDelegation>> {
        self.agents.get(id).and_then(|a| a.delegation.as_ref())
    }

    /// The quotas that apply to agent `id`: its base's, team's and own
    /// (the base's for an undeclared agent).
    pub fn quotas(&self, id: &str) -> &[super::quota::QuotaDecl] {
        &self.agents.get(id).unwrap_or(&self.unknown_agent).quotas
    }

    /// The base document's name (the organisation) and currency.
    pub fn organisation(&self) -> (&str, &str) {
        let name = self
            .scopes
            .iter()
            .find(|s| s.kind == Some(Kind::Base))
            .map_or("", |s| &*s.name);
        (name, &self.vocab.currency)
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

    /// The behavioural detection settings of agent `id` (the base's for an
    /// undeclared agent).
    pub fn detection(&self, id: &str) -> &Arc<DetectionPolicy> {
        &self.agents.get(id).unwrap_or(&self.unknown_agent).detection
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
