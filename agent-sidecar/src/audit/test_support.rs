//! Helpers shared by the unit tests of the audit module.

use std::{path::Path, time::Duration};

use serde_json::json;

use super::{
    checkpoint::NoteSigner,
    record::{
        ActionInfo, ActionTarget, ActionType, AgentIdentity, AuditEntry, InputContext, Outcome,
        OutcomeStatus, Phase, PolicyResult, RecordKind, Redaction, RedactionMethod, TraceContext,
    },
    store::{AuditConfig, AuditLog, FsyncPolicy},
};

/// The signing key of the test logs.
pub(super) fn signer() -> NoteSigner {
    NoteSigner::from_seed("example.test/audit/agent-1", &[7u8; 32]).unwrap()
}

/// A typical tool-call record: tier `1 + i % 4`, agent `agent-(i % 3)`.
pub(super) fn entry(i: u64) -> AuditEntry {
    let mut e = AuditEntry::new(
        RecordKind::ToolCall,
        if i.is_multiple_of(2) {
            Phase::Attempt
        } else {
            Phase::Outcome
        },
        AgentIdentity {
            id: format!("agent-{}", i % 3),
            owner: Some("payments-team@example.test".into()),
            team: Some("payments".into()),
            purpose: Some("invoice reconciliation".into()),
            environment: Some("prod".into()),
            instance: Some("pod-7f9c".into()),
        },
    );
    e.trace = Some(TraceContext {
        trace_id: format!("{:032x}", i / 2 + 1),
        span_id: format!("{:016x}", i + 1),
        parent_span_id: None,
    });
    e.action = Some(ActionInfo {
        kind: ActionType::Rest,
        tool: Some("erp".into()),
        name: Some(
            if i.is_multiple_of(5) {
                "pay_invoice"
            } else {
                "list_invoices"
            }
            .into(),
        ),
        target: Some(ActionTarget {
            method: Some("POST".into()),
            host: Some("erp.tools.test".into()),
            port: Some(443),
            path: Some("/v1/invoices".into()),
            ..ActionTarget::default()
        }),
        attributes: Some(json!({"amount": i * 10, "records": 1})),
    });
    e.input = Some(InputContext {
        value: json!({"invoice": format!("inv-{i}"), "iban": "sha256:1f2e..."}),
        redactions: vec![Redaction {
            path: "$.iban".into(),
            method: RedactionMethod::Hash,
            policy_version: "sha256:abcd".into(),
        }],
    });
    e.policy = Some(PolicyResult {
        tier: (1 + i % 4) as u8,
        deny: false,
        rules: vec!["erp-payments".into()],
        version: "sha256:abcd".into(),
        label: Some("v42".into()),
        reason: None,
    });
    e.outcome = Some(Outcome {
        status: OutcomeStatus::Success,
        upstream_status: Some(200),
        bytes_in: Some(120),
        bytes_out: Some(2048),
        latency_us: Some(850),
        error: None,
    });
    e
}

/// A log in `dir` with a signer, fsync always, and quick intervals.
pub(super) fn config(dir: &Path) -> AuditConfig {
    let mut c = AuditConfig::new(
        dir,
        "example.test/audit/agent-1",
        AgentIdentity::id("agent-1"),
    );
    c.signer = Some(signer());
    c.fsync = FsyncPolicy::Always;
    c.checkpoint_interval = Duration::from_secs(3600);
    c
}

/// Opens a log with [`config`].
pub(super) fn open(dir: &Path) -> AuditLog {
    AuditLog::open(config(dir)).unwrap()
}
