//! What grants in force do to a tool call's decision: a `tool` or
//! `action` grant lowers a decision above tier 2 on that tool (or
//! `tool.action`) to tier 2 (supervised: forwarded, the owner notified,
//! reversible); a `tier_ceiling` grant lowers any decision above its tier
//! to it. A tier-4 or deny decision is never lowered, whatever is granted;
//! a behavioural floor and quotas apply after the grant. The grant's id
//! is a deciding rule (`grant:<id>`), so every record names it.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{Grant, GrantKind, GrantRequest, GrantSink, GrantStep, GrantStore};
use crate::policy::{Action, DecidingRule, Decision, Tier};

/// The grants in force, as the gateway reads them (updated by the store's
/// every step; expiry is also checked at each read, to the second), and
/// the store the agent's own requests go to once it is attached.
#[derive(Clone, Default)]
pub struct GrantsInForce(
    Arc<ArcSwap<Vec<Grant>>>,
    Arc<std::sync::OnceLock<GrantStore>>,
);

impl std::fmt::Debug for GrantsInForce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GrantsInForce")
            .field(&self.0.load().len())
            .field(&self.1.get().is_some())
            .finish()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl GrantsInForce {
    /// Attaches the agent's grant store: its grants in force follow every
    /// step, and the agent may ask it for grants itself.
    pub fn attach(&self, store: &GrantStore) {
        self.set(&store.in_force());
        if self.1.set(store.clone()).is_ok() {
            store.add_sink(Arc::new(self.clone()));
        }
    }

    /// The attached store, if any.
    pub fn store(&self) -> Option<&GrantStore> {
        self.1.get()
    }

    /// Replaces the grants in force.
    pub fn set(&self, in_force: &[Grant]) {
        self.0.store(Arc::new(in_force.to_vec()));
    }

    /// The decision of `action` with the grants in force applied.
    pub fn apply(&self, action: &Action, decision: Decision) -> Decision {
        if decision.tier >= Tier::Halt || decision.tier <= Tier::Supervised {
            return decision;
        }
        let grants = self.0.load();
        if grants.is_empty() {
            return decision;
        }
        let t = now();
        let qualified = match (&action.tool, &action.action) {
            (Some(tool), Some(act)) => Some(format!("{tool}.{act}")),
            _ => None,
        };
        let best = grants
            .iter()
            .filter(|g| g.in_force(t) && g.request.agent == action.agent.id)
            .filter_map(|g| {
                let ceiling = match g.request.kind {
                    GrantKind::TierCeiling => match g.request.target.as_str() {
                        "1" => Tier::Autonomous,
                        "2" => Tier::Supervised,
                        "3" => Tier::Approval,
                        _ => return None,
                    },
                    GrantKind::Tool if action.tool.as_deref() == Some(&g.request.target) => {
                        Tier::Supervised
                    }
                    GrantKind::Action if qualified.as_deref() == Some(&g.request.target) => {
                        Tier::Supervised
                    }
                    _ => return None,
                };
                Some((ceiling, g))
            })
            .min_by_key(|(c, _)| *c);
        let Some((ceiling, grant)) = best else {
            return decision;
        };
        if ceiling >= decision.tier {
            return decision;
        }
        let mut d = decision;
        d.reason = format!(
            "{} (lowered from tier {} to tier {} by grant {}: {})",
            d.reason, d.tier as u8, ceiling as u8, grant.id, grant.request.purpose
        );
        d.tier = ceiling;
        d.rules.insert(
            0,
            DecidingRule {
                id: format!("grant:{}", grant.id).into(),
                level: "grant".into(),
                source: format!(
                    "{} {} approved by {}",
                    grant.request.kind.as_str(),
                    grant.request.target,
                    grant.decided_by.as_deref().unwrap_or("?")
                )
                .into(),
            },
        );
        d
    }
}

impl GrantSink for GrantsInForce {
    fn grant(
        &self,
        in_force: &[Grant],
        _: GrantStep,
        _: Option<&Grant>,
        _: Option<&GrantRequest>,
        _: Option<&str>,
    ) {
        self.set(in_force);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::{GrantRequest, GrantState};
    use crate::policy::AgentIdentity;

    fn grant(kind: GrantKind, target: &str, agent: &str, expires_in: i64) -> Grant {
        Grant {
            id: format!("g-{target}"),
            request: GrantRequest {
                agent: agent.into(),
                kind,
                target: target.into(),
                purpose: "quarter close".into(),
                ttl_secs: 60,
                requested_by: agent.into(),
            },
            state: GrantState::Approved,
            decided_by: Some("lead".into()),
            reason: None,
            created_at: 0,
            expires_at: Some((now() as i64 + expires_in) as u64),
        }
    }

    fn action(tool: &str, act: &str) -> Action {
        Action {
            agent: AgentIdentity {
                id: "payer".into(),
                environment: "prod".into(),
                ..Default::default()
            },
            tool: Some(tool.into()),
            action: Some(act.into()),
            target: None,
            attributes: Default::default(),
        }
    }

    fn decided(tier: Tier) -> Decision {
        Decision {
            tier,
            rules: vec![DecidingRule {
                id: "r".into(),
                level: "base acme".into(),
                source: "org.yaml:1:1".into(),
            }],
            policy_version: serde_json::from_value(
                serde_json::json!({"hash": "sha256:00", "label": "t"}),
            )
            .unwrap(),
            reason: "rule r".into(),
            quarantine: false,
        }
    }

    #[test]
    fn grants_lower_tier_3_but_never_tier_4_or_deny_and_only_while_in_force() {
        let g = GrantsInForce::default();
        let pay = action("erp", "pay");
        assert_eq!(g.apply(&pay, decided(Tier::Approval)).tier, Tier::Approval);
        g.set(&[grant(GrantKind::Action, "erp.pay", "payer", 60)]);
        let d = g.apply(&pay, decided(Tier::Approval));
        assert_eq!(d.tier, Tier::Supervised);
        assert_eq!(&*d.rules[0].id, "grant:g-erp.pay");
        assert!(
            d.reason.contains("lowered from tier 3 to tier 2"),
            "{}",
            d.reason
        );
        // Another action, another agent's grant, an expired grant: nothing.
        assert_eq!(
            g.apply(&action("erp", "wire"), decided(Tier::Approval))
                .tier,
            Tier::Approval
        );
        g.set(&[
            grant(GrantKind::Action, "erp.pay", "other", 60),
            grant(GrantKind::Tool, "erp", "payer", -1),
        ]);
        assert_eq!(g.apply(&pay, decided(Tier::Approval)).tier, Tier::Approval);
        // A tier ceiling of 1 lowers tier 3 to 1, never tier 4 or deny.
        g.set(&[
            grant(GrantKind::TierCeiling, "1", "payer", 60),
            grant(GrantKind::Tool, "erp", "payer", 60),
        ]);
        assert_eq!(
            g.apply(&pay, decided(Tier::Approval)).tier,
            Tier::Autonomous
        );
        assert_eq!(g.apply(&pay, decided(Tier::Halt)).tier, Tier::Halt);
        assert_eq!(g.apply(&pay, decided(Tier::Deny)).tier, Tier::Deny);
        // A ceiling never raises.
        g.set(&[grant(GrantKind::TierCeiling, "3", "payer", 60)]);
        assert_eq!(
            g.apply(&pay, decided(Tier::Autonomous)).tier,
            Tier::Autonomous
        );
        assert_eq!(g.apply(&pay, decided(Tier::Approval)).rules.len(), 1);
    }
}
