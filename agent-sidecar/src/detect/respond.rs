//! [`GatewayResponder`]: detector responses acted out on the tool gateway.

use super::engine::Responder;
use crate::{approvals::UnixMillis, gateway::Gateway, policy::Tier};

/// What responses act on in `run`: the agent's gateway (its minimum tier)
/// and, through it, the kernel (quarantine). Refuses to act on another
/// agent than the gateway's.
pub struct GatewayResponder(pub Gateway);

impl Responder for GatewayResponder {
    fn raise_tier(
        &self,
        agent_id: &str,
        tier: Tier,
        until: UnixMillis,
        reason: &str,
    ) -> Result<(), String> {
        self.check(agent_id)?;
        self.0.tier_floor().raise(tier, until.0, reason);
        Ok(())
    }

    fn quarantine(&self, agent_id: &str, reason: &str) -> Result<(), String> {
        self.check(agent_id)?;
        self.0.quarantine_now(reason);
        Ok(())
    }
}

impl GatewayResponder {
    fn check(&self, agent_id: &str) -> Result<(), String> {
        if agent_id == self.0.agent_id() {
            Ok(())
        } else {
            Err(format!(
                "agent `{agent_id}` is not the one this sidecar governs (`{}`)",
                self.0.agent_id()
            ))
        }
    }
}
