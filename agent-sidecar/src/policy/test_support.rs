//! Helpers for the policy unit tests: policy sets from in-memory files.

use super::{
    CompileError, CompiledPolicySet,
    action::{Action, AgentIdentity, Attributes},
    source::{Snapshot, SourceFile},
};

/// Compiles the given `(path, text)` files.
pub(crate) fn compile(files: &[(&str, &str)]) -> Result<CompiledPolicySet, CompileError> {
    CompiledPolicySet::compile(Snapshot::from_files(
        "p",
        files
            .iter()
            .map(|(p, t)| SourceFile {
                path: p.to_string(),
                text: t.to_string(),
            })
            .collect(),
    ))
}

/// Compiles, panicking with the problems if the set is invalid.
pub(crate) fn set(files: &[(&str, &str)]) -> CompiledPolicySet {
    compile(files).unwrap_or_else(|e| panic!("{e}"))
}

/// The single problem of an invalid set, as text.
pub(crate) fn one_problem(files: &[(&str, &str)]) -> String {
    match compile(files) {
        Ok(_) => panic!("the set compiled"),
        Err(e) => {
            assert_eq!(e.problems().len(), 1, "expected one problem, got:\n{e}");
            e.to_string()
        }
    }
}

/// An action of `agent` in `env` on `tool.action` with `attributes`.
pub(crate) fn action(
    agent: &str,
    env: &str,
    tool: &str,
    act: &str,
    attributes: Attributes,
) -> Action {
    Action {
        agent: AgentIdentity {
            id: agent.into(),
            environment: env.into(),
            ..Default::default()
        },
        tool: Some(tool.into()),
        action: Some(act.into()),
        target: None,
        attributes,
    }
}

/// A base with an ERP tool (payments with amount, currency and records) and
/// a CRM MCP tool, and a few rules (fixture `acme/base`).
pub(crate) const BASE: &str = agent_sidecar_test_support::fixtures::ACME_BASE;

/// A team under [`BASE`] (fixture `acme/team`).
pub(crate) const TEAM: &str = agent_sidecar_test_support::fixtures::ACME_TEAM;
/// An agent of [`TEAM`] (fixture `acme/agent`).
pub(crate) const AGENT: &str = agent_sidecar_test_support::fixtures::ACME_AGENT;
