//! The gateway's routes: `GET /v1/compensations` (tier-2 calls still
//! inside their window); `POST /v1/compensations/{id}/trigger` with an
//! optional JSON object merged into the compensating request;
//! `GET /v1/quarantine`; `POST /v1/quarantine/release` with
//! `{"operator": "...", "reason": "..."}`; `GET /v1/policy` (the version in
//! force and the kept ones); `POST /v1/policy/rollback` with
//! `{"version": "<hash prefix>", "operator": "...", "reason": "..."}`.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    gateway::{Gateway, compensate::CompensationError},
    policy::reload::RollbackError,
};

/// Answers `method path` with a status and a JSON body, or `None` when the
/// path is not one of these routes. `body` is at most
/// [`MAX_BODY`](crate::approvals::MAX_BODY) bytes.
pub(super) async fn route(
    gateway: &Gateway,
    method: &Method,
    path: &str,
    body: Bytes,
) -> Option<(StatusCode, Value)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method.as_str(), segments.as_slice()) {
        ("GET", ["v1", "compensations"]) => (
            StatusCode::OK,
            json!({ "compensations": gateway.compensations() }),
        ),
        ("POST", ["v1", "compensations", id, "trigger"]) => {
            let extra = if body.is_empty() {
                json!({})
            } else {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => {
                        return Some(error(
                            StatusCode::BAD_REQUEST,
                            "invalid_body",
                            "the body must be a JSON object (merged into the compensating request's body)",
                        ));
                    }
                }
            };
            match gateway.trigger_compensation(id, extra).await {
                Ok((status, answer)) => (
                    StatusCode::OK,
                    json!({ "id": id, "upstream_status": status, "answer": answer }),
                ),
                Err(e) => {
                    let status = match e {
                        CompensationError::NotFound(_) => StatusCode::NOT_FOUND,
                        CompensationError::Closed(..) => StatusCode::GONE,
                        CompensationError::AlreadyTriggered(_) => StatusCode::CONFLICT,
                        CompensationError::Build(_) => StatusCode::UNPROCESSABLE_ENTITY,
                        CompensationError::Refused(_) => StatusCode::FORBIDDEN,
                        CompensationError::NotSent(_) | CompensationError::Upstream(_) => {
                            StatusCode::BAD_GATEWAY
                        }
                    };
                    error(status, "compensation_failed", &e.to_string())
                }
            }
        }
        ("GET", ["v1", "quarantine"]) => (
            StatusCode::OK,
            json!({ "agent": gateway.agent_id(), "quarantined": gateway.quarantined() }),
        ),
        ("POST", ["v1", "quarantine", "release"]) => {
            let who: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (Some(operator), Some(reason)) = (
                who.get("operator")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty()),
                who.get("reason")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty()),
            ) else {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "expected {\"operator\": \"...\", \"reason\": \"...\"}",
                ));
            };
            match gateway.release_quarantine(operator, reason) {
                Ok(()) => (
                    StatusCode::OK,
                    json!({ "agent": gateway.agent_id(), "quarantined": false, "released_by": operator }),
                ),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "release_failed", &e),
            }
        }
        ("GET", ["v1", "policy"]) => {
            let versions = gateway.policy_versions();
            (
                StatusCode::OK,
                json!({ "current": versions.first(), "kept": versions.get(1..).unwrap_or_default() }),
            )
        }
        ("POST", ["v1", "policy", "rollback"]) => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let field = |name: &str| {
                body.get(name)
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
            };
            let (Some(version), Some(operator), Some(reason)) =
                (field("version"), field("operator"), field("reason"))
            else {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "expected {\"version\": \"<4+ hex digits of the hash>\", \"operator\": \"...\", \"reason\": \"...\"}",
                ));
            };
            match gateway.rollback_policy(version, operator, reason) {
                Ok(v) => (
                    StatusCode::OK,
                    json!({ "current": v, "rolled_back_by": operator }),
                ),
                Err(e @ RollbackError::UnknownVersion(_)) => {
                    error(StatusCode::NOT_FOUND, "unknown_version", &e.to_string())
                }
                Err(e @ RollbackError::Archive(..)) => error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "archived_version_invalid",
                    &e.to_string(),
                ),
            }
        }
        _ => return None,
    })
}

fn error(status: StatusCode, code: &str, message: &str) -> (StatusCode, Value) {
    (status, json!({ "error": code, "message": message }))
}
