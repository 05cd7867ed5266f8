//! `run`'s just-in-time grants: the store of the agent's grants (in its
//! state directory), bounded by the policy's `grantable:` entries; an
//! approved egress grant is one more kernel allowlist entry, and its end
//! (expiry, revocation) removes it and cuts the agent's connections to
//! that destination. Every step is an action event.

use std::{
    path::Path,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use tokio::task::JoinHandle;

use super::RunError;
use crate::{
    egress::Allowlist,
    events::EventBus,
    grants::{
        Grant, GrantBounds, GrantKind, GrantRequest, GrantSink, GrantStep, GrantStore,
        egress::KernelGrants, run_expiry,
    },
    kernel::Enforcer,
    policy::grantable::{GrantableDecl, GrantableKind},
};

/// How often the expiry timer looks when no grant is due sooner: a grant
/// ends at most this late.
const EXPIRY_TICK: Duration = Duration::from_millis(500);

/// The bounds the agent's `grantable:` entries allow: their targets, the
/// shortest of their TTL bounds, their approvers (anyone but the agent
/// when one entry names none). `None` when no entry selects the agent.
pub(crate) fn bounds(entries: &[GrantableDecl]) -> Option<GrantBounds> {
    if entries.is_empty() {
        return None;
    }
    let mut targets: Vec<String> = entries.iter().flat_map(|e| e.targets.clone()).collect();
    targets.sort();
    targets.dedup();
    let approvers = if entries.iter().any(|e| e.approvers.is_empty()) {
        Vec::new()
    } else {
        let mut a: Vec<String> = entries.iter().flat_map(|e| e.approvers.clone()).collect();
        a.sort();
        a.dedup();
        a
    };
    let mut kinds: Vec<GrantKind> = Vec::new();
    for e in entries {
        let k = match e.kind {
            GrantableKind::Egress => GrantKind::Egress,
            GrantableKind::Tool => GrantKind::Tool,
            GrantableKind::Action => GrantKind::Action,
            GrantableKind::TierCeiling => GrantKind::TierCeiling,
        };
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    Some(GrantBounds {
        kinds,
        targets,
        max_ttl: Duration::from_secs(entries.iter().map(|e| e.max_ttl_secs).min().unwrap_or(0)),
        approvers,
        never: Vec::new(),
    })
}

/// Applies each change of the grants in force to the kernel.
struct KernelSink(KernelGrants);

impl GrantSink for KernelSink {
    fn grant(
        &self,
        in_force: &[Grant],
        step: GrantStep,
        grant: Option<&Grant>,
        _: Option<&GrantRequest>,
        _: Option<&str>,
    ) {
        let ended: Vec<Grant> = match (step, grant) {
            (GrantStep::Approved, _) => Vec::new(),
            (GrantStep::Revoked | GrantStep::Expired, Some(g)) => vec![g.clone()],
            _ => return,
        };
        match self.0.apply(in_force, &ended) {
            Ok(report) => tracing::info!(
                target: "agent_sidecar::grants",
                step = step.as_str(),
                grant = grant.map(|g| g.id.as_str()),
                connections_cut = report.destroyed,
                "egress grants applied to the kernel"
            ),
            Err(e) => tracing::error!(
                target: "agent_sidecar::grants",
                step = step.as_str(),
                error = %e,
                "egress grants could not be applied to the kernel"
            ),
        }
    }
}

/// Sends each grant step to the approvers' webhook (`grant.requested`,
/// `grant.approved`, ...), with the approvers the policy names for the
/// agent's grants, so the approval system routes a request to them.
struct ApproverWebhook {
    hook: Arc<crate::approvals::WebhookNotifier>,
    approvers: Vec<String>,
}

impl GrantSink for ApproverWebhook {
    fn grant(
        &self,
        _: &[Grant],
        step: GrantStep,
        grant: Option<&Grant>,
        request: Option<&GrantRequest>,
        reason: Option<&str>,
    ) {
        self.hook.post(&serde_json::json!({
            "event": format!("grant.{}", step.as_str()),
            "grant": grant,
            "request": request,
            "reason": reason,
            "approvers": self.approvers,
        }));
    }
}

/// Revokes the agent's grants in force when its `idle` alert fires
/// (`revoke_when_idle: true` in a `grantable:` entry that selects it).
struct RevokeWhenIdle(GrantStore);

impl crate::detect::AlertSink for RevokeWhenIdle {
    fn deliver(&self, alert: &crate::detect::Alert, activity: crate::detect::Activity) {
        if activity != crate::detect::Activity::Create
            || alert.detector != crate::policy::detection::DetectorKind::Idle
        {
            return;
        }
        let reason = format!(
            "idle alert {}: no action for {} s; grants are reclaimed from idle agents",
            alert.id, alert.observed
        );
        for g in self.0.in_force() {
            if let Err(e) = self.0.revoke(&g.id, "idle-detector", &reason) {
                tracing::error!(target: "agent_sidecar::grants", grant = %g.id, error = %e, "cannot revoke the grant of an idle agent");
            }
        }
    }
}

/// The agent's grants and the task that ends them on time.
pub(crate) struct RunGrants {
    pub(crate) store: GrantStore,
    expiry: JoinHandle<()>,
}

/// Where the grants' steps go besides the kernel.
pub(crate) struct GrantHooks<'a> {
    /// The action event bus (audit, metrics, log).
    pub(crate) events: &'a EventBus,
    /// The detectors (an idle alert revokes, with `revoke_when_idle`).
    pub(crate) detection: &'a crate::detect::Detection,
    /// The gateway's view of the grants in force.
    pub(crate) decisions: &'a crate::grants::GrantsInForce,
    /// The approvers' webhook.
    pub(crate) approver: Option<Arc<crate::approvals::WebhookNotifier>>,
}

impl RunGrants {
    /// Opens the grants of the agent (under `agent_dir/grants`) when the
    /// policy lets it have any, applies those still in force to the
    /// kernel (they survive a restart), records the ones that ran out
    /// while the sidecar was down, and starts the expiry timer.
    pub(crate) fn start(
        entries: &[GrantableDecl],
        agent_dir: &Path,
        allowlist: Allowlist,
        enforcer: Weak<Mutex<Enforcer>>,
        hooks: GrantHooks<'_>,
    ) -> Result<Option<RunGrants>, RunError> {
        let GrantHooks {
            events,
            detection,
            decisions,
            approver,
        } = hooks;
        let Some(bounds) = bounds(entries) else {
            return Ok(None);
        };
        let (store, expired) = GrantStore::open(&agent_dir.join("grants"), bounds)
            .map_err(|e| RunError::Gateway(e.to_string()))?;
        let kernel = KernelSink(KernelGrants::new(allowlist, enforcer));
        kernel
            .0
            .apply(&store.in_force(), &expired)
            .map_err(|e| RunError::Gateway(format!("egress grants: {e}")))?;
        store.add_sink(Arc::new(kernel));
        decisions.attach(&store);
        if let Some(hook) = approver {
            let approvers = store.bounds().approvers.clone();
            store.add_sink(Arc::new(ApproverWebhook { hook, approvers }));
        }
        store.add_sink(Arc::new(events.clone()));
        for g in &expired {
            events.grant(&store.in_force(), GrantStep::Expired, Some(g), None, None);
        }
        if entries.iter().any(|e| e.revoke_when_idle) {
            detection.add_sink(Arc::new(RevokeWhenIdle(store.clone())));
        }
        let expiry = tokio::spawn(run_expiry(store.clone(), EXPIRY_TICK, |_| {}));
        Ok(Some(RunGrants { store, expiry }))
    }

    /// Stops the expiry timer (the grants stay on disk).
    pub(crate) fn stop(self) {
        self.expiry.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::{Activity, Alert, AlertSink, Fold, Pattern},
        grants::GrantState,
        policy::detection::{DetectorKind, Response},
    };

    fn alert(detector: DetectorKind) -> Alert {
        Alert {
            id: "al-1".into(),
            agent_id: "payer".into(),
            pool: None,
            detector,
            pattern: Pattern::Idle,
            subject: "no action".into(),
            severity: 2,
            first_ms: 0,
            last_ms: 1,
            count: 1,
            observed: 900.0,
            baseline: 0.0,
            threshold: 600.0,
            unit: "seconds".into(),
            events: Vec::new(),
            response: Response::Notify,
            fold: Fold::Nothing,
        }
    }

    #[test]
    fn an_idle_alert_revokes_the_grants_in_force_and_nothing_else_does() {
        let entries = [GrantableDecl {
            kind: crate::policy::grantable::GrantableKind::Egress,
            targets: vec!["198.51.100.9:7001".into()],
            max_ttl_secs: 600,
            teams: Vec::new(),
            agents: Vec::new(),
            approvers: Vec::new(),
            revoke_when_idle: true,
        }];
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = GrantStore::open(dir.path(), bounds(&entries).unwrap()).unwrap();
        let g = store
            .request(GrantRequest {
                agent: "payer".into(),
                kind: GrantKind::Egress,
                target: "198.51.100.9:7001".into(),
                purpose: "p".into(),
                ttl_secs: 600,
                requested_by: "payer".into(),
            })
            .unwrap();
        store.approve(&g.id, "lead", "ok").unwrap();
        let sink = RevokeWhenIdle(store.clone());
        sink.deliver(&alert(DetectorKind::Idle), Activity::Update);
        sink.deliver(&alert(DetectorKind::NewAction), Activity::Create);
        assert_eq!(store.in_force().len(), 1, "only a new idle alert reclaims");
        sink.deliver(&alert(DetectorKind::Idle), Activity::Create);
        assert!(store.in_force().is_empty());
        let revoked = store.list(Some(GrantState::Revoked));
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].decided_by.as_deref(), Some("idle-detector"));
    }

    #[tokio::test]
    async fn grant_steps_reach_the_approvers_webhook_with_the_approvers_of_the_policy() {
        let hook = agent_sidecar_test_support::webhook::Webhook::start().await;
        let entries = [
            GrantableDecl {
                kind: GrantableKind::Action,
                targets: vec!["erp.pay".into()],
                max_ttl_secs: 600,
                teams: Vec::new(),
                agents: Vec::new(),
                approvers: vec!["lead@example.test".into()],
                revoke_when_idle: false,
            },
            GrantableDecl {
                kind: GrantableKind::TierCeiling,
                targets: vec!["2".into()],
                max_ttl_secs: 60,
                teams: Vec::new(),
                agents: Vec::new(),
                approvers: vec!["cfo@example.test".into()],
                revoke_when_idle: false,
            },
        ];
        let b = bounds(&entries).unwrap();
        assert_eq!(b.kinds, vec![GrantKind::Action, GrantKind::TierCeiling]);
        assert_eq!(b.max_ttl.as_secs(), 60);
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = GrantStore::open(dir.path(), b).unwrap();
        let notifier = crate::approvals::WebhookNotifier::spawn(
            crate::approvals::WebhookConfig::new(hook.url.clone()),
        )
        .unwrap();
        store.add_sink(Arc::new(ApproverWebhook {
            hook: Arc::new(notifier),
            approvers: store.bounds().approvers.clone(),
        }));
        let g = store
            .request(GrantRequest {
                agent: "payer".into(),
                kind: GrantKind::Action,
                target: "erp.pay".into(),
                purpose: "supplier run".into(),
                ttl_secs: 60,
                requested_by: "payer".into(),
            })
            .unwrap();
        let event = hook.wait_for("grant.requested").await;
        assert_eq!(event["grant"]["id"], g.id.as_str());
        assert_eq!(
            event["approvers"],
            serde_json::json!(["cfo@example.test", "lead@example.test"])
        );
        store.approve(&g.id, "lead@example.test", "ok").unwrap();
        let event = hook.wait_for("grant.approved").await;
        assert_eq!(event["grant"]["state"], "approved");
    }
}
