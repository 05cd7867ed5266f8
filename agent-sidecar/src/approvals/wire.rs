//! The JSON bodies of the admin API, shared by the server and the client.

use serde::{Deserialize, Serialize};

use super::{
    limits::{MAX_APPROVER, MAX_REASON},
    model::PendingApproval,
};

/// The body of an error response.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: String,
    pub(crate) message: String,
}

/// The body of `approve` and `deny`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    pub(crate) approver: String,
    pub(crate) reason: String,
}

impl DecisionBody {
    /// Both fields non-empty, bounded, without control characters.
    pub(crate) fn validate(&self) -> Result<(), String> {
        check_field("approver", &self.approver, MAX_APPROVER)?;
        check_field("reason", &self.reason, MAX_REASON)
    }
}

/// The body of the list endpoint.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ListBody {
    pub(crate) approvals: Vec<PendingApproval>,
}

fn check_field(name: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{name} must not be empty"));
    }
    if value.len() > max {
        return Err(format!("{name} must be at most {max} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{name} must not contain control characters"));
    }
    Ok(())
}
