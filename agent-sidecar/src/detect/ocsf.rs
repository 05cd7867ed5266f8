//! Alerts as OCSF 1.5 Detection Findings (class_uid 2004, category 2
//! Findings): what SIEMs that speak OCSF ingest as they are. The mapping
//! (and the severity table) is documented in `docs/alerts.md`.

use serde_json::{Value, json};

use super::alert::{Activity, Alert};

/// The OCSF schema version the findings follow.
pub const OCSF_VERSION: &str = "1.5.0";
/// Detection Finding.
pub const CLASS_UID: u32 = 2004;
/// Findings.
pub const CATEGORY_UID: u32 = 2;

/// The OCSF name of a severity_id.
pub fn severity_name(id: u8) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        6 => "Fatal",
        _ => "Unknown",
    }
}

/// The OCSF name of the anomaly's observed parameter.
fn parameter(a: &Alert) -> &'static str {
    use crate::policy::detection::DetectorKind as D;
    match a.detector {
        D::RateSurge => "tool_calls_per_hour",
        D::NewDestination => "destination",
        D::NewTool => "tool",
        D::NewAction => "action",
        D::NewTransition => "action_transition",
        D::OffHours => "actions_per_hour_of_week",
        D::VolumeSurge => "bytes_per_hour",
        D::AmountSurge => "declared_amount_per_day",
        D::DeniedBurst => "refused_egress_per_minute",
        D::TierShift => "tier_3_plus_share",
        D::Idle => "seconds_since_last_action",
    }
}

fn figure(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// `alert` as an OCSF Detection Finding; `activity` says whether it is
/// new (activity_id 1, Create) or the final count of a repeated one (2,
/// Update).
pub fn detection_finding(alert: &Alert, activity: Activity) -> Value {
    let (activity_id, activity_name) = match activity {
        Activity::Create => (1, "Create"),
        Activity::Update => (2, "Update"),
    };
    let param = parameter(alert);
    let timespan = json!({
        "start_time": alert.first_ms,
        "end_time": alert.last_ms,
        "duration": alert.last_ms.saturating_sub(alert.first_ms),
    });
    let observed = match alert.pattern {
        super::Pattern::Unseen => alert.subject.clone(),
        _ => figure(alert.observed),
    };
    let evidences: Vec<Value> = alert
        .events
        .iter()
        .map(|e| {
            let mut ev = json!({
                "name": e.kind,
                "data": e,
            });
            if let Some(uid) = e.record_id.as_ref().or(e.trace_id.as_ref()) {
                ev["uid"] = json!(uid);
            }
            if let Some(d) = &e.destination {
                ev["dst_endpoint"] = json!({ "hostname": d });
            }
            ev
        })
        .collect();
    json!({
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": format!("Detection Finding: {activity_name}"),
        "time": alert.last_ms,
        "start_time": alert.first_ms,
        "end_time": alert.last_ms,
        "count": alert.count,
        "severity_id": alert.severity,
        "severity": severity_name(alert.severity),
        "status_id": 1,
        "status": "New",
        "is_alert": true,
        "message": alert.summary(),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": format!("{}:{}", alert.id, activity_id),
            "correlation_uid": alert.id,
            "log_name": "behavioural_detection",
            "product": {
                "name": "agent-sidecar",
                "vendor_name": "agent-sidecar",
                "version": env!("CARGO_PKG_VERSION"),
            },
        },
        "finding_info": {
            "uid": alert.id,
            "title": format!("{} {}: {}", alert.agent_id, alert.detector, alert.subject),
            "desc": alert.summary(),
            "types": [alert.detector.as_str()],
            "created_time": alert.first_ms,
            "first_seen_time": alert.first_ms,
            "last_seen_time": alert.last_ms,
            "analytic": {
                "name": alert.detector.as_str(),
                "uid": alert.detector.as_str(),
                "type_id": 2,
                "type": "Behavioral",
                "category": alert.observation_type(),
            },
        },
        "anomaly_analyses": [{
            "analysis_targets": [{ "name": alert.agent_id, "type": "AI Agent" }],
            "anomalies": [{
                "observation_parameter": param,
                "observation_type": alert.observation_type(),
                "observed_pattern": alert.pattern.as_str(),
                "observations": [{
                    "value": observed,
                    "count": alert.count,
                    "timespan": timespan,
                }],
            }],
            "baselines": [
                {
                    "observation_parameter": param,
                    "observation_type": "Baseline",
                    "observations": [{ "value": figure(alert.baseline) }],
                },
                {
                    "observation_parameter": format!("{param}.threshold"),
                    "observation_type": "Threshold",
                    "observations": [{ "value": figure(alert.threshold) }],
                },
            ],
        }],
        "evidences": evidences,
        "unmapped": {
            "agent_id": alert.agent_id,
            "pool": alert.pool,
            "response": alert.response.as_str(),
            "unit": alert.unit,
            "alert": alert,
        },
    })
}
