//! [`FleetIdentity`]: what a kill switch's scope is matched against.

use serde::Serialize;

/// The governed agent as the fleet sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FleetIdentity {
    /// The agent id.
    pub agent_id: String,
    /// This replica's instance id (`serve`: `namespace.pod`; `run`: the
    /// agent id).
    pub instance_id: String,
    /// The agent's team, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The agent's roles (from its policy document).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The deployment environment.
    pub environment: String,
}
