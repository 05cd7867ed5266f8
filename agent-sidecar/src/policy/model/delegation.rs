//! The `delegation:` section of an agent document: which other agents it
//! calls as tools and what it may delegate to each (caller side), and
//! whose delegations it accepts and whether it acts only under one
//! (callee side). Enforced by [`crate::delegation`]; see
//! `docs/delegation.md`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `delegation:` of an agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegationSection {
    /// The agents this agent calls through a declared tool, and what it
    /// may hand each of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegates: Vec<DelegateDecl>,
    /// The agents (SPIFFE IDs) whose delegations this agent accepts on
    /// its inbound endpoint (`--a2a-listen`). Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_from: Vec<String>,
    /// The agent acts only for a delegator: every tool call must carry
    /// the trace of a delegation in force and stay within it. Without it,
    /// calls outside any delegation are decided by the agent's own policy
    /// alone (calls inside one are always narrowed to it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_delegated: bool,
}

/// One `delegates:` entry: another agent, reached through `tool`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegateDecl {
    /// The callee's SPIFFE ID,
    /// `spiffe://<trust-domain>/team/<team>/agent/<agent>`.
    pub to: String,
    /// The HTTP tool (declared in the set) whose host is the callee's
    /// sidecar endpoint; its host must be the callee's identity name
    /// `<agent>.<team>.<trust-domain>`.
    pub tool: String,
    /// What this agent may delegate, in the callee's policy names: `tool`
    /// (every action) or `tool.action`. A call may narrow it
    /// (`x-agent-delegate-tools`), never widen it.
    pub permissions: Vec<String>,
    /// JSON schema of the callee's answer, by action of `tool`. An answer
    /// that is not JSON or violates it never reaches the agent; an action
    /// without a schema is refused (fail closed).
    #[serde(default)]
    pub answer_schemas: BTreeMap<String, serde_json::Value>,
}

impl DelegateDecl {
    /// The trust domain, team and agent of `to`, if it is a well-formed
    /// fleet SPIFFE ID.
    pub fn parts(&self) -> Option<(&str, &str, &str)> {
        spiffe_parts(&self.to)
    }
}

/// `(trust domain, team, agent)` of `spiffe://TD/team/T/agent/A`.
pub fn spiffe_parts(id: &str) -> Option<(&str, &str, &str)> {
    let rest = id.strip_prefix("spiffe://")?;
    let mut it = rest.split('/');
    let (td, t, team, a, agent) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    let ok = |s: &str| {
        s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    (it.next().is_none() && t == "team" && a == "agent" && ok(td) && ok(team) && ok(agent))
        .then_some((td, team, agent))
}

/// A checked `delegation:` section with its answer schemas compiled.
#[derive(Debug)]
pub struct CompiledDelegation {
    /// The section as written.
    pub section: DelegationSection,
    /// Answer schemas of each `delegates` entry (same order), by action.
    pub answers: Vec<crate::delegation::answer::AnswerSchemas>,
}

/// Two compiled sections are equal when they were written alike (the
/// schemas are compiled from the section).
impl PartialEq for CompiledDelegation {
    fn eq(&self, other: &Self) -> bool {
        self.section == other.section
    }
}

impl CompiledDelegation {
    /// The `delegates` entry reached through `tool`, with its answer
    /// schemas.
    pub fn delegate_for(
        &self,
        tool: &str,
    ) -> Option<(&DelegateDecl, &crate::delegation::answer::AnswerSchemas)> {
        self.section
            .delegates
            .iter()
            .zip(&self.answers)
            .find(|(d, _)| d.tool == tool)
    }

    /// Whether delegations of `delegator` are accepted.
    pub fn accepts(&self, delegator: &str) -> bool {
        self.section.accept_from.iter().any(|a| a == delegator)
    }
}

#[cfg(test)]
mod tests {
    use super::spiffe_parts;
    use crate::policy::test_support::{compile, one_problem};

    const BASE: &str = "kind: base\nname: acme\nlabel: t\ntools:\n  - name: researcher\n    http: { host: researcher.research.fleet.test }\n    actions:\n      - { name: research, method: POST, path: /research }\n      - { name: status, method: GET, path: /status }\n";

    fn agent(delegation: &str) -> String {
        format!("kind: agent\nid: orch\nowner: o@x.test\npurpose: p\ndelegation:\n{delegation}")
    }

    #[test]
    fn a_delegation_section_compiles_only_when_every_callee_action_has_an_answer_schema() {
        let good = agent(
            "  delegates:\n    - to: spiffe://fleet.test/team/research/agent/researcher\n      tool: researcher\n      permissions: [erp.list_invoices]\n      answer_schemas: { research: { type: object }, status: { type: object } }\n  accept_from: [spiffe://fleet.test/team/ops/agent/boss]\n",
        );
        let set = compile(&[("base.yaml", BASE), ("orch.yaml", &good)]).unwrap();
        let d = set.delegation("orch").unwrap();
        assert!(d.delegate_for("researcher").is_some());
        assert!(d.accepts("spiffe://fleet.test/team/ops/agent/boss"));
        assert!(!d.accepts("spiffe://fleet.test/team/ops/agent/other"));
        for (section, expect) in [
            // An action without a schema: its answers could not be checked.
            (
                "  delegates:\n    - to: spiffe://fleet.test/team/research/agent/researcher\n      tool: researcher\n      permissions: [erp]\n      answer_schemas: { research: { type: object } }\n",
                "has no answer schema",
            ),
            // The tool's host is not the callee's identity name.
            (
                "  delegates:\n    - to: spiffe://fleet.test/team/other/agent/researcher\n      tool: researcher\n      permissions: [erp]\n      answer_schemas: { research: {}, status: {} }\n",
                "answers as `researcher.other.fleet.test`",
            ),
            (
                "  delegates:\n    - to: spiffe://fleet.test/team/research/agent/researcher\n      tool: nope\n      permissions: [erp]\n",
                "tool `nope` is not declared",
            ),
            (
                "  delegates:\n    - to: https://researcher\n      tool: researcher\n      permissions: [erp]\n",
                "not a fleet SPIFFE ID",
            ),
            (
                "  delegates:\n    - to: spiffe://fleet.test/team/research/agent/researcher\n      tool: researcher\n      permissions: []\n      answer_schemas: { research: {}, status: {} }\n",
                "`permissions` is empty",
            ),
            (
                "  delegates:\n    - to: spiffe://fleet.test/team/research/agent/researcher\n      tool: researcher\n      permissions: [erp]\n      answer_schemas: { research: { type: 12 }, status: {} }\n",
                "answer schema for tool research is invalid",
            ),
            (
                "  accept_from: [\"spiffe://fleet.test/team/../agent/x\"]\n",
                "not a fleet SPIFFE ID",
            ),
        ] {
            let p = one_problem(&[("base.yaml", BASE), ("orch.yaml", &agent(section))]);
            assert!(p.contains(expect), "{expect}: {p}");
        }
    }

    #[test]
    fn only_fleet_spiffe_ids_parse() {
        assert_eq!(
            spiffe_parts("spiffe://fleet.test/team/ops/agent/orch"),
            Some(("fleet.test", "ops", "orch"))
        );
        for bad in [
            "spiffe://fleet.test/team/ops/agent/orch/x",
            "spiffe://fleet.test/team/ops/agent/",
            "spiffe://fleet.test/team/../agent/a",
            "https://fleet.test/team/ops/agent/orch",
            "spiffe://fleet.test/ops/agent/orch",
            "spiffe://Fleet.test/team/ops/agent/orch",
        ] {
            assert_eq!(spiffe_parts(bad), None, "{bad}");
        }
    }
}
