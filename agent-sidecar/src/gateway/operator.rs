//! What an operator can do to a running gateway (served by
//! [`crate::admin`]): list and trigger tier-2 compensations, read and
//! release the agent's quarantine, list the policy versions and roll back
//! to one.

use serde_json::Value;
use tracing::warn;

use crate::policy::{PolicyVersion, reload::RollbackError};

use super::{
    TierFloor,
    compensate::{Compensable, CompensationError, Trigger, trigger},
    state::Gateway,
};

impl Gateway {
    /// The agent this gateway governs.
    pub fn agent_id(&self) -> &str {
        &self.shared.identity.id
    }

    /// Tier-2 calls still inside their compensation window.
    pub fn compensations(&self) -> Vec<Compensable> {
        self.shared.compensations.list()
    }

    /// Runs the compensating action of `id` with `extra` (a JSON object)
    /// merged into the original request; returns the upstream's status and
    /// answer. At most once.
    pub async fn trigger_compensation(
        &self,
        id: &str,
        extra: Value,
    ) -> Result<(u16, Value), CompensationError> {
        let gw = &self.shared;
        let ctx = Trigger {
            compensations: &gw.compensations,
            policy: &gw.policy,
            identity: &gw.identity,
            upstream: &gw.upstream,
        };
        trigger(&ctx, id, extra).await
    }

    /// The policy version in force, then the kept previous ones, newest
    /// first.
    pub fn policy_versions(&self) -> Vec<PolicyVersion> {
        self.shared.policy.versions()
    }

    /// Puts a kept or archived policy version (a hash prefix) back in force
    /// until the policy directory changes again; held calls are decided
    /// again under it like after any reload.
    pub fn rollback_policy(
        &self,
        version: &str,
        operator: &str,
        reason: &str,
    ) -> Result<PolicyVersion, RollbackError> {
        let v = self.shared.policy.rollback(version)?;
        warn!(
            agent_id = %self.shared.identity.id,
            version = %v.short(),
            label = %v.label,
            operator,
            reason,
            "policy rolled back by an operator"
        );
        Ok(v)
    }

    /// The minimum tier behavioural alerts may impose on the agent.
    pub fn tier_floor(&self) -> &TierFloor {
        &self.shared.oversight.floor
    }

    /// Quarantines the agent now, in the gateway and the kernel at once
    /// (no refusal is waiting to reach the agent first), then cancels its
    /// held calls on the runtime: a behavioural detector's response.
    pub fn quarantine_now(&self, reason: &str) {
        let q = &self.shared.oversight.quarantine;
        q.engage(reason);
        q.apply_kernel();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let gw = self.clone();
            let reason = reason.to_string();
            rt.spawn(async move { gw.quarantine(&reason).await });
        }
    }

    /// Whether the agent is quarantined.
    pub fn quarantined(&self) -> bool {
        self.shared.oversight.quarantine.active()
    }

    /// Lifts the agent's quarantine, in the gateway and the kernel, and
    /// records who did it and why (a `quarantine_released` event).
    pub fn release_quarantine(&self, operator: &str, reason: &str) -> Result<(), String> {
        let gw = &self.shared;
        gw.oversight.quarantine.release()?;
        gw.recorder
            .quarantine_released(&gw.identity, operator, reason);
        Ok(())
    }
}
