//! [`WebhookAlerts`]: alerts as OCSF Detection Findings POSTed to a
//! webhook (the SOC's), on the webhook's own delivery task and queue: a
//! `detection.finding` event whose `finding` is the OCSF object, with the
//! alert's id, agent, detector and activity beside it for routing.

use std::sync::Arc;

use super::{
    alert::{Activity, Alert},
    engine::AlertSink,
    ocsf::detection_finding,
};
use crate::approvals::WebhookNotifier;

/// Posts each alert, as an OCSF Detection Finding, to a webhook.
pub struct WebhookAlerts(pub Arc<WebhookNotifier>);

impl AlertSink for WebhookAlerts {
    fn deliver(&self, alert: &Alert, activity: Activity) {
        self.0.post(&serde_json::json!({
            "event": "detection.finding",
            "alert_id": alert.id,
            "agent": alert.agent_id,
            "detector": alert.detector.as_str(),
            "activity": match activity {
                Activity::Create => "create",
                Activity::Update => "update",
            },
            "count": alert.count,
            "finding": detection_finding(alert, activity),
        }));
    }
}
