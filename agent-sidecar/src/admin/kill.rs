//! The kill switch routes: `GET /v1/kill-switches` (every switch this
//! sidecar follows, whether it covers its agent, and whether the agent is
//! stopped), `POST /v1/kill-switches` with
//! `{"id", "scope": {"team": "..."}, "reason", "by"}` (trips one on this
//! sidecar) and `POST /v1/kill-switches/{id}/release` with
//! `{"approver", "reason"}`.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::reply::ApiError;
use crate::{
    approvals::{Approver, Approvers},
    fleet::{KillSwitch, KillSwitches, LocalError},
};

fn refused(e: &LocalError) -> (StatusCode, Value) {
    let (status, code) = match e {
        LocalError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        LocalError::Unknown(_) => (StatusCode::NOT_FOUND, "unknown_kill_switch"),
        LocalError::FromFile(_) => (StatusCode::CONFLICT, "set_by_fleet_controls"),
        LocalError::Duplicate(_) => (StatusCode::CONFLICT, "duplicate_id"),
        LocalError::Store { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "store_failed"),
    };
    (status, json!({"error": code, "message": e.to_string()}))
}

/// Answers `method path`, or `None` when the path is not one of these
/// routes. With an approver directory, a release needs the approver's own
/// token and is recorded under their name (as approvals are).
pub(super) fn route(
    ks: &KillSwitches,
    method: &Method,
    path: &str,
    body: &Bytes,
    approvers: Option<&Approvers>,
    approver: Option<&Approver>,
) -> Option<(StatusCode, Value)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method.as_str(), segments.as_slice()) {
        ("GET", ["v1", "kill-switches"]) => (
            StatusCode::OK,
            json!({
                "agent": ks.identity(),
                "engaged": ks.engaged(),
                "fleet_controls_error": ks.file_error(),
                "kill_switches": ks.list(),
            }),
        ),
        ("POST", ["v1", "kill-switches"]) => {
            let switch: KillSwitch = match serde_json::from_slice(body) {
                Ok(s) => s,
                Err(e) => {
                    return Some((
                        StatusCode::BAD_REQUEST,
                        json!({"error": "invalid_body", "message": format!("{e}; expected {{\"id\": \"...\", \"scope\": {{\"team\": \"...\"}}, \"reason\": \"...\", \"by\": \"...\"}}")}),
                    ));
                }
            };
            if switch.by.as_deref().is_none_or(|b| b.trim().is_empty()) {
                return Some((
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_body", "message": "`by` (who trips the switch) is required"}),
                ));
            }
            match ks.trip_local(switch) {
                Ok(view) => (
                    StatusCode::CREATED,
                    json!({"kill_switch": view, "engaged": ks.engaged()}),
                ),
                Err(e) => refused(&e),
            }
        }
        ("POST", ["v1", "kill-switches", id, "release"]) => {
            let who: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let field = |name: &str| who.get(name).and_then(Value::as_str).unwrap_or("");
            let by = match super::approvals::decider(approvers, approver, field("approver").into())
            {
                Ok(by) => by,
                Err(ApiError {
                    status,
                    code,
                    message,
                    ..
                }) => {
                    tracing::warn!(kill_switch = %id, error = %message, "kill switch release refused");
                    return Some((status, json!({"error": code, "message": message})));
                }
            };
            match ks.release_local(id, &by, field("reason")) {
                Ok(()) => (
                    StatusCode::OK,
                    json!({"released": id, "engaged": ks.engaged(), "by": by}),
                ),
                Err(e) => refused(&e),
            }
        }
        _ => return None,
    })
}
