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
    policy::grantable::GrantableDecl,
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
    Some(GrantBounds {
        kinds: vec![GrantKind::Egress],
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

/// The agent's grants and the task that ends them on time.
pub(crate) struct RunGrants {
    pub(crate) store: GrantStore,
    expiry: JoinHandle<()>,
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
        events: &EventBus,
    ) -> Result<Option<RunGrants>, RunError> {
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
        store.add_sink(Arc::new(events.clone()));
        for g in &expired {
            events.grant(&store.in_force(), GrantStep::Expired, Some(g), None, None);
        }
        let expiry = tokio::spawn(run_expiry(store.clone(), EXPIRY_TICK, |_| {}));
        Ok(Some(RunGrants { store, expiry }))
    }

    /// Stops the expiry timer (the grants stay on disk).
    pub(crate) fn stop(self) {
        self.expiry.abort();
    }
}
