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
/// a CRM MCP tool, and a few rules.
pub(crate) const BASE: &str = r#"
kind: base
name: acme
label: test-1
exchange_rates: { EUR: 1.1 }
tools:
  - name: erp
    http: { host: erp.example }
    attributes:
      regulatory: { const: [sox] }
    actions:
      - name: pay
        method: POST
        path: /v1/payments
        attributes:
          amount: { body: /amount, currency: { body: /currency } }
          records: { body: /lines, count: true, default: 1 }
          reversibility: { const: irreversible }
      - name: read
        method: GET
        path: /v1/vendors/{id}
        tier: 1
  - name: crm
    mcp: { server: crm }
    actions:
      - name: export
        mcp_tool: export_customers
        attributes:
          records: { body: /limit }
          sensitivity: { const: [pii] }
rules:
  - id: pay.medium
    when: { tool: erp, action: pay, amount: { gte: 500 } }
    tier: 2
  - id: pay.large
    when: { tool: erp, action: pay, amount: { gt: 50000 } }
    tier: 3
  - id: pii.scale
    when: { sensitivity: { any_of: [pii] }, records: { gte: 10000 } }
    tier: 4
egress:
  allow:
    - 10.0.0.0/8:443
    - target: 192.168.0.0/16
      protocol: tcp
"#;

/// A team and an agent under [`BASE`].
pub(crate) const TEAM: &str = "kind: team\nname: fin\nrules:\n  - id: fin.pay\n    when: { tool: erp, action: pay, amount: { gt: 25000 } }\n    tier: 3\n";
/// An agent of [`TEAM`].
pub(crate) const AGENT: &str =
    "kind: agent\nid: bot\nowner: jane@acme.example\npurpose: pays vendors\nteam: fin\n";
