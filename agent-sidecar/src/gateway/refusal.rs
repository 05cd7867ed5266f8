//! Refusals as the agent sees them: an HTTP status with a JSON body, or a
//! JSON-RPC error for MCP, naming the reason, the rules and the policy
//! version.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode, header};
use serde_json::{Value, json};

use super::{AgentBody, mcp};
use crate::policy::{Decision, Tier};

/// Why a call was refused.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// HTTP status for REST calls.
    pub status: StatusCode,
    /// Machine-readable reason (`tier_4_halt`, `policy_deny`,
    /// `approval_denied`, `approval_expired`, `body_too_large`...).
    pub reason: &'static str,
    /// For humans.
    pub message: String,
    /// The tier, rules and policy version, when a decision was made.
    pub decision: Option<Box<Decision>>,
    /// The approval involved, if any.
    pub approval_id: Option<String>,
    /// How to ask for a just-in-time grant that would lift it, when the
    /// policy allows one.
    pub request_access: Option<Box<Value>>,
}

impl Refusal {
    /// A refusal without a policy decision (malformed or oversized input).
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            reason,
            message: message.into(),
            decision: None,
            approval_id: None,
            request_access: None,
        }
    }

    /// A refusal caused by `decision`.
    pub fn decided(
        status: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
        decision: &Decision,
    ) -> Self {
        Refusal {
            decision: Some(Box::new(decision.clone())),
            ..Refusal::new(status, reason, message)
        }
    }

    /// With the approval that was involved.
    pub fn with_approval(mut self, id: impl Into<String>) -> Self {
        self.approval_id = Some(id.into());
        self
    }

    /// The JSON error object.
    pub fn body(&self) -> Value {
        let mut error = json!({
            "reason": self.reason,
            "message": self.message,
        });
        if let Some(d) = &self.decision {
            error["tier"] = json!(d.tier);
            error["rules"] = json!(d.rules.iter().map(|r| &*r.id).collect::<Vec<_>>());
            error["policy_version"] = json!(d.policy_version);
            error["decision_reason"] = json!(d.reason);
        }
        if let Some(id) = &self.approval_id {
            error["approval_id"] = json!(id);
        }
        if let Some(h) = &self.request_access {
            error["request_access"] = (**h).clone();
        }
        json!({ "error": error })
    }

    /// The REST response.
    pub fn response(&self) -> Response<AgentBody> {
        json_response(self.status, &self.body())
    }

    /// The JSON-RPC error code for MCP.
    pub fn rpc_code(&self) -> i64 {
        match self.reason {
            "approval_denied" | "approval_cancelled" | "already_forwarded" => mcp::APPROVAL_DENIED,
            "invalid_tool_name" | "confusable_tool_name" => mcp::INVALID_PARAMS,
            "approval_expired" => mcp::APPROVAL_EXPIRED,
            "body_too_large" => mcp::TOO_LARGE,
            _ => mcp::POLICY_DENIED,
        }
    }

    /// The JSON-RPC error response for request `id`.
    pub fn rpc(&self, id: Option<&Value>) -> Value {
        let data = self.body()["error"].clone();
        mcp::error_object(id, self.rpc_code(), &self.message, data)
    }
}

/// The tier's refusal reason and status.
pub(crate) fn for_tier(tier: Tier) -> (StatusCode, &'static str) {
    match tier {
        Tier::Deny => (StatusCode::FORBIDDEN, "policy_deny"),
        _ => (StatusCode::FORBIDDEN, HALT_REASON),
    }
}

/// The refusal reason of a tier-4 halt.
pub const HALT_REASON: &str = "tier_4_halt";

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<AgentBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes_response(status, "application/json", Bytes::from(bytes))
}

/// A response with a fixed body.
pub(crate) fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<AgentBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

/// A fixed body as an [`AgentBody`].
pub(crate) fn full(body: Bytes) -> AgentBody {
    Full::new(body).map_err(|never| match never {}).boxed()
}
