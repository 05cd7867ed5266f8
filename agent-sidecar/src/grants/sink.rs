//! Who hears of grant steps: the [`GrantSink`] trait (the kernel overlay,
//! the action event bus) and the step as an action event.

use super::model::{Grant, GrantRequest};

/// A step in a grant's life, as its sinks hear of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStep {
    /// Asked for, within the bounds: pending.
    Requested,
    /// Approved: in force until its expiry.
    Approved,
    /// Denied by an approver.
    Denied,
    /// Withdrawn before its expiry.
    Revoked,
    /// Its time ran out.
    Expired,
    /// A request or decision refused (outside the bounds, self-approval,
    /// wrong state): nothing changed.
    Refused,
}

impl GrantStep {
    /// The name used in audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStep::Requested => "requested",
            GrantStep::Approved => "approved",
            GrantStep::Denied => "denied",
            GrantStep::Revoked => "revoked",
            GrantStep::Expired => "expired",
            GrantStep::Refused => "refused",
        }
    }
}

/// Told of every grant step, after it is on disk (the kernel overlay,
/// the action event bus). Must return quickly.
pub trait GrantSink: Send + Sync {
    /// One step: the grants in force after it, the grant as it is now
    /// (`None` for a refused request, whose `request` is given), and for a
    /// refusal, why.
    fn grant(
        &self,
        in_force: &[Grant],
        step: GrantStep,
        grant: Option<&Grant>,
        request: Option<&GrantRequest>,
        detail: Option<&str>,
    );
}

/// A grant step as an action event (audit record `grant`, metric
/// `agent_sidecar_grant_events_total{step}`).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct GrantEvent<'a> {
    /// The agent the grant is for.
    pub agent_id: &'a str,
    /// The step.
    pub step: GrantStep,
    /// The grant as it is now (absent for a refused request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<&'a Grant>,
    /// The refused request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<&'a GrantRequest>,
    /// Why a request or decision was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}
