//! The parts of an audit record: who, trace, action, input, policy,
//! oversight, outcome, retention.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::time::Timestamp;

/// Who acted: the agent as its registry entry names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentIdentity {
    /// Agent id (`--agent-id`, the policy's agent document).
    pub id: String,
    /// Accountable owner (a person or team address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Team the agent belongs to (policy hierarchy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Declared business purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Deployment environment (prod, staging, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// This running instance (pod name, host and pid, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl AgentIdentity {
    /// An identity with only its id.
    pub fn id(id: impl Into<String>) -> AgentIdentity {
        AgentIdentity {
            id: id.into(),
            ..AgentIdentity::default()
        }
    }
}

/// The W3C trace context (`traceparent`) of the workflow the action
/// belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceContext {
    /// Trace id: 32 lower-case hex digits.
    #[schemars(regex(pattern = r"^[0-9a-f]{32}$"))]
    pub trace_id: String,
    /// This action's span id: 16 lower-case hex digits.
    #[schemars(regex(pattern = r"^[0-9a-f]{16}$"))]
    pub span_id: String,
    /// The caller's span id, when the agent sent a traceparent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{16}$"))]
    pub parent_span_id: Option<String>,
}

/// How the action reached the sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    /// A REST call of a declared tool.
    Rest,
    /// An MCP `tools/call`.
    Mcp,
    /// A connection or packet seen by the kernel programs.
    Connect,
    /// A DNS query.
    Dns,
    /// A connection through a proxy (CONNECT, SNI, Host).
    Proxy,
    /// Something the sidecar or an operator did (policy, approval,
    /// quarantine, start, stop).
    Sidecar,
}

/// What was done, to what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionInfo {
    /// How the action reached the sidecar.
    #[serde(rename = "type")]
    pub kind: ActionType,
    /// The tool, as the policy names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The action of the tool, as the policy names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ActionTarget>,
    /// The declared risk attributes the policy decided on (amount, record
    /// count, ...): a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Value>,
}

/// The target of an action: an HTTP request, an MCP tool, an address or a
/// name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionTarget {
    /// HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Host name (or DNS name queried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP path (without the query string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// MCP tool name of a `tools/call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_tool: Option<String>,
    /// Destination IP address (kernel and proxy events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The input that led to the action, redacted by policy before it reached
/// the log, and what was redacted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputContext {
    /// The redacted input (a JSON value: the body or arguments as kept).
    pub value: Value,
    /// Each field the redaction touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redactions: Vec<Redaction>,
}

/// What redaction did to one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedactionMethod {
    /// Removed.
    Drop,
    /// Replaced by a keyed hash (equal values correlate, unreadable).
    Hash,
    /// Kept as is (declared as safe).
    Keep,
}

/// One field the redaction touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Redaction {
    /// Where the field was: a JSON pointer into the body or MCP arguments
    /// (`/iban`; array elements as `*`: `/lines/*/card`; `""` the whole
    /// body; `*` stands for further fields when the list is cut at 64).
    pub path: String,
    /// What was done to it.
    pub method: RedactionMethod,
    /// Version (content hash) of the policy that asked for it.
    pub policy_version: String,
}

/// The policy's verdict on the action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyResult {
    /// Tier 1 (autonomous) to 4 (halt and escalate).
    #[schemars(range(min = 1, max = 4))]
    pub tier: u8,
    /// Refused outright by a deny rule (nobody was asked).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deny: bool,
    /// Ids of the rules that set the tier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Version of the policy set: its content hash.
    pub version: String,
    /// Human label of that version (a git tag, a release name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Why, in words (the policy's explanation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an approver decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Approved: the call is forwarded once.
    Approved,
    /// Denied by an approver.
    Denied,
    /// Nobody answered within the SLA: denied.
    Expired,
    /// Cancelled before anyone answered.
    Cancelled,
}

/// Human oversight of the action: the approval (who was asked, who
/// answered, when, what, why) and the compensation that can reverse it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Oversight {
    /// Approval id (`apr_...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Who was asked (approver groups or addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asked: Vec<String>,
    /// Who answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// What they decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Why, in the approver's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the approval was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Timestamp>,
    /// When it was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Timestamp>,
    /// Compensation (reversal) id of a tier-2 call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation_id: Option<String>,
}

/// How an action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// Done as asked.
    Success,
    /// Tried and failed (upstream error, timeout).
    Failure,
    /// Partly done (a batch with failures, a cut-off stream).
    Partial,
    /// Not done: refused by policy, an approver, the kernel or a limit.
    Refused,
    /// Not done yet: held for approval.
    Pending,
}

impl OutcomeStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Success => "success",
            OutcomeStatus::Failure => "failure",
            OutcomeStatus::Partial => "partial",
            OutcomeStatus::Refused => "refused",
            OutcomeStatus::Pending => "pending",
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// success, failure, partial, refused or pending.
    pub status: OutcomeStatus,
    /// The upstream's HTTP status (or the status the sidecar answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// Bytes received from the agent (request body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// Bytes sent back to the agent (response body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// From the request's arrival to its end, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Why it failed or was refused, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How long the record is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Retention class (configured per log: name and duration).
    pub class: String,
    /// When the record may be deleted (time plus the class's duration);
    /// deletion takes whole segments whose every record expired.
    pub expires_at: Timestamp,
}
