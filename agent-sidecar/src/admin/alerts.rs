//! The detectors' routes: `GET /v1/alerts` (the agent's open and recently
//! closed alerts) and `POST /v1/alerts/{id}/benign` with
//! `{"operator": "...", "reason": "..."}`: what the alert found is folded
//! into the agent's baseline and stops alerting.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::detect::Detection;

/// Answers `method path` for `agent_id`'s alerts, or `None` when the path
/// is not one of these routes.
pub(super) fn route(
    detection: &Detection,
    agent_id: &str,
    method: &Method,
    path: &str,
    body: &Bytes,
) -> Option<(StatusCode, Value)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method.as_str(), segments.as_slice()) {
        ("GET", ["v1", "alerts"]) => {
            let alerts = detection
                .with_state(agent_id, |s| s.alerts().cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            (
                StatusCode::OK,
                json!({ "agent": agent_id, "alerts": alerts }),
            )
        }
        ("POST", ["v1", "alerts", id, "benign"]) => {
            let who: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let field = |name: &str| {
                who.get(name)
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
            };
            let (Some(operator), Some(reason)) = (field("operator"), field("reason")) else {
                return Some((
                    StatusCode::BAD_REQUEST,
                    json!({ "error": "invalid_body", "message": "expected {\"operator\": \"...\", \"reason\": \"...\"}" }),
                ));
            };
            if detection.mark_benign(agent_id, id) {
                tracing::warn!(target: "agent_sidecar::detect", agent = agent_id, alert = id, operator, reason, "alert marked benign: folded into the baseline");
                (
                    StatusCode::OK,
                    json!({ "agent": agent_id, "alert": id, "benign": true, "marked_by": operator }),
                )
            } else {
                (
                    StatusCode::NOT_FOUND,
                    json!({ "error": "unknown_alert", "message": format!("no alert `{id}` is kept for agent `{agent_id}` (the last 32 closed and every open one are): fold an older one from its file with `agent-sidecar baseline benign` while the sidecar is stopped") }),
                )
            }
        }
        _ => return None,
    })
}
