//! [`WebhookAlerts`]: alerts as OCSF Detection Findings POSTed to a
//! webhook (the SOC's), on the webhook's own delivery task and queue.

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
        self.0.post(&detection_finding(alert, activity));
    }
}
