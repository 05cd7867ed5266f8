//! What happens at a hop between agents, as an event (the audit record
//! `delegation`, the SOC notice on refusals,
//! `agent_sidecar_delegations_total`).

use std::net::SocketAddr;

/// What happened at a hop between agents (the audit record `delegation`,
/// the SOC notice on refusals, `agent_sidecar_delegations_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DelegationStep {
    /// The caller's sidecar minted a token and sent the call.
    Minted,
    /// The callee's sidecar admitted a token and opened the task.
    Admitted,
    /// The callee's sidecar refused a call from another agent.
    Refused,
    /// The caller's sidecar refused the callee's answer (schema).
    AnswerRefused,
}

impl DelegationStep {
    /// The `step` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DelegationStep::Minted => "minted",
            DelegationStep::Admitted => "admitted",
            DelegationStep::Refused => "refused",
            DelegationStep::AnswerRefused => "answer_refused",
        }
    }
}

/// One hop event.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct DelegationEvent<'a> {
    /// This sidecar's agent.
    pub agent_id: &'a str,
    /// What happened.
    pub step: DelegationStep,
    /// The delegating agent (SPIFFE ID), when known.
    pub delegator: Option<&'a str>,
    /// The agent delegated to.
    pub audience: Option<&'a str>,
    /// The token id, when one was read.
    pub token_id: Option<&'a str>,
    /// What the token delegates.
    pub permissions: &'a [String],
    /// Why it was refused (`Refusal::reason`, or `answer_schema`).
    pub reason: Option<&'a str>,
    /// The refusal's message.
    pub detail: Option<&'a str>,
    /// The trace context of the hop.
    pub traceparent: Option<&'a str>,
    /// The TCP peer of a refused inbound connection.
    pub peer_addr: Option<SocketAddr>,
}

/// Receives hop events.
pub trait DelegationSink: Send + Sync {
    /// One event.
    fn delegation(&self, event: &DelegationEvent<'_>);
}
