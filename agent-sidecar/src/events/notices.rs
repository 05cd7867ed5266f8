//! [`Notices`]: the owner's and the SOC's webhooks, fed by the events.
//!
//! - a tier-4 halt (`action.halted`) goes to the SOC and the owner, with
//!   the action, the decision and whether the agent was quarantined;
//! - a supervised (tier-2) call that reached the tool
//!   (`action.supervised`) goes to the owner, with what was sent as
//!   approvers would see it, the upstream's status and the compensation
//!   that can undo it while its window is open;
//! - an operator's release of a quarantine (`agent.released`) goes to the
//!   SOC.
//!
//! Each POST is queued on the webhook's own task: the event's producer
//! never waits for it. Each is a signed envelope (`docs/alerts.md`); `at`
//! is RFC 3339.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{ActionEvent, ActionSink, QuarantineReleased};
use crate::{
    approvals::{UnixMillis, WebhookNotifier},
    gateway::ToolCallEvent,
    webhook::rfc3339,
};

/// Who hears about supervised actions, halts and quarantines.
#[derive(Clone, Default)]
pub struct Notices {
    /// The agents' owner (tier 2 notices, tier 4 alerts).
    pub owner: Option<Arc<WebhookNotifier>>,
    /// The SOC (tier 4 alerts, quarantine releases).
    pub soc: Option<Arc<WebhookNotifier>>,
}

impl Notices {
    fn owner(&self, event: &Value) {
        if let Some(w) = &self.owner {
            w.post(event);
        }
    }

    fn soc(&self, event: &Value) {
        if let Some(w) = &self.soc {
            w.post(event);
        }
    }

    fn tool_call(&self, e: &ToolCallEvent) {
        if e.halted() {
            let alert = json!({
                "event": "action.halted",
                "at": rfc3339(e.at.0 as i64),
                "agent": e.action.agent,
                "action": e.action,
                "decision": e.decision,
                "quarantined": e.decision.quarantine,
            });
            self.soc(&alert);
            self.owner(&alert);
        } else if e.supervised_forward()
            && let Some(request) = &e.shown
        {
            let compensation = e.compensation.as_ref().map(|c| {
                json!({
                    "id": c.id,
                    "action": c.compensation,
                    "until": c.until,
                    "input": c.input,
                    "request": c.request,
                    "trigger": format!("POST /v1/compensations/{}/trigger", c.id),
                })
            });
            self.owner(&json!({
                "event": "action.supervised",
                "at": rfc3339(e.at.0 as i64),
                "agent": e.action.agent,
                "action": e.action,
                "decision": e.decision,
                "request": request,
                "upstream_status": e.upstream_status,
                "compensation": compensation,
            }));
        }
    }

    fn released(&self, r: &QuarantineReleased<'_>) {
        self.soc(&json!({
            "event": "agent.released",
            "at": rfc3339(UnixMillis::now().0 as i64),
            "agent": r.agent,
            "operator": r.operator,
            "reason": r.reason,
        }));
    }
}

impl ActionSink for Notices {
    fn consume(&self, event: ActionEvent<'_>) {
        match event {
            ActionEvent::ToolCall(e) => self.tool_call(e),
            ActionEvent::QuarantineReleased(r) => self.released(&r),
            ActionEvent::KillSwitch(k)
                if matches!(
                    k.step,
                    crate::fleet::KillSwitchStep::Engaged
                        | crate::fleet::KillSwitchStep::Released
                        | crate::fleet::KillSwitchStep::ControlsRefused
                ) =>
            {
                self.soc(&json!({
                    "event": "agent.kill_switch",
                    "at": rfc3339(UnixMillis::now().0 as i64),
                    "kill_switch": k,
                }));
            }
            ActionEvent::Delegation(d)
                if matches!(
                    d.step,
                    crate::delegation::event::DelegationStep::Refused
                        | crate::delegation::event::DelegationStep::AnswerRefused
                ) =>
            {
                self.soc(&json!({
                    "event": "agent.delegation_refused",
                    "at": rfc3339(UnixMillis::now().0 as i64),
                    "delegation": d,
                }));
            }
            _ => {}
        }
    }
}
