//! What an operator can do to a running gateway (served by
//! [`crate::admin`]): list and trigger tier-2 compensations, read and
//! release the agent's quarantine.

use serde_json::Value;

use super::{
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
