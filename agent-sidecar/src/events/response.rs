//! [`DetectionResponse`]: what the sidecar did on its own when a
//! behavioural detector fired (raise the agent's minimum tier, quarantine
//! it, or only notify), itself an action event so the log, the metrics and
//! the audit trail keep it.

use serde::Serialize;

use crate::{
    approvals::UnixMillis,
    policy::{
        Tier,
        detection::{DetectorKind, Response},
    },
};

/// One response to one alert.
#[derive(Clone, Debug, Serialize)]
pub struct DetectionResponse {
    /// When it was taken.
    pub at: UnixMillis,
    /// The agent.
    pub agent_id: String,
    /// The alert (its `finding_info.uid`).
    pub alert_id: String,
    /// The detector that fired.
    pub detector: DetectorKind,
    /// What the policy said to do.
    pub response: Response,
    /// `raise_tier`: the agent's minimum tier until `until`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tier: Option<Tier>,
    /// `raise_tier`: when the raised minimum ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<UnixMillis>,
    /// Whether it took effect (`false` with `error` when it could not).
    pub applied: bool,
    /// Why it did not take effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
