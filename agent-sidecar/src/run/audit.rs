//! The audit trail of `run`: the agent's log opened before enforcement
//! starts (so that the kernel's first refusal has a log to go to), its
//! sink on the action event bus, and the policy set in force recorded.

use std::sync::Arc;

use serde_json::json;

use super::{RunError, RunOptions, egress_plan::EgressPlan};
use crate::{
    audit::{AuditError, record::AgentIdentity},
    events::{ActionEvent, ActionSink, AuditTrail, AuditTrailError, EventBus, PolicyEvent},
    metrics::Metrics,
};

/// Opens the trail of `agent_id`, adds its sink to `events` and records
/// the policy set loaded at start.
pub(super) fn open(
    opts: &RunOptions,
    agent_id: &str,
    plan: &EgressPlan,
    metrics: &Arc<Metrics>,
    events: &EventBus,
) -> Result<AuditTrail, RunError> {
    let policy = plan.gateway.as_ref();
    let mut identity = match policy.map(|p| &p.identity) {
        Some(i) => AgentIdentity {
            id: i.id.clone(),
            owner: i.owner.clone(),
            team: i.team.clone(),
            purpose: i.purpose.clone(),
            environment: Some(i.environment.clone()).filter(|e| !e.is_empty()),
            instance: Some(instance()),
        },
        None => AgentIdentity {
            instance: Some(instance()),
            ..AgentIdentity::id(agent_id)
        },
    };
    // In a pod: the annotations fill what the policy does not say, and
    // the instance is the pod's.
    if let Some(pod) = &opts.pod {
        identity.owner = identity.owner.or_else(|| pod.owner.clone());
        identity.team = identity.team.or_else(|| pod.team.clone());
        identity.purpose = identity.purpose.or_else(|| pod.purpose.clone());
        identity.instance = Some(pod.instance_id.clone());
    }
    let start = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "mode": if opts.pod.is_some() { "serve" } else { "run" },
        "pid": std::process::id(),
        "command": opts.command.first().map(|c| c.to_string_lossy().into_owned()),
    });
    let trail = AuditTrail::open(
        &opts.audit,
        &opts.state_dir,
        identity,
        Some(metrics.audit()),
        start,
    )
    .map_err(|e| match e {
        // The log's lock is taken first: another sidecar of this agent id.
        AuditTrailError::Log(AuditError::Locked { .. }) => RunError::Audit(format!(
            "agent id `{agent_id}` is in use by a running agent-sidecar: {e}; choose another \
             --agent-id or stop that sidecar"
        )),
        e => RunError::Audit(e.to_string()),
    })?;
    let sink = trail.sink();
    if let Some(p) = policy {
        let version = p.store.current().version().clone();
        sink.consume(ActionEvent::Policy(PolicyEvent {
            agent_id,
            result: "loaded",
            version: Some(&version),
            reason: None,
        }));
    }
    events.add(Arc::new(sink));
    Ok(trail)
}

/// This sidecar instance: host name and pid.
pub(super) fn instance() -> String {
    let host = nix::sys::utsname::uname()
        .ok()
        .and_then(|u| u.nodename().to_str().map(str::to_string))
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{}", std::process::id())
}
