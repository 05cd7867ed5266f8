//! Egress grants in the kernel: the agent's allowlist is its planned rules
//! plus one rule per egress grant in force (`IP:PORT` targets, TCP only);
//! when a grant ends, the allowlist is rewritten without it and the open
//! connections to its destination are destroyed at once.

use std::{
    net::SocketAddr,
    sync::{Mutex, PoisonError, Weak},
};

use super::model::{Grant, GrantKind};
use crate::{
    egress::{Allowlist, EgressRule, Protocols, RuleSource, Target},
    kernel::{Enforcer, KernelError, sockets::DestroyReport},
};

/// `base` plus one TCP rule per egress grant of `in_force` whose target is
/// an address and port (a name target is the resolver's business).
pub fn overlay(base: &Allowlist, in_force: &[Grant]) -> Allowlist {
    let mut out = base.clone();
    for (g, target) in in_force.iter().filter_map(|g| Some((g, egress_target(g)?))) {
        out.push(EgressRule {
            target,
            protocols: Protocols::Tcp,
            source: RuleSource::Grant(g.id.clone()),
        });
    }
    out
}

/// The destination of an egress grant naming one address and port.
pub fn egress_target(g: &Grant) -> Option<Target> {
    if g.request.kind != GrantKind::Egress {
        return None;
    }
    let target: Target = g.request.target.parse().ok()?;
    let host = target.net.prefix_len() == target.net.max_prefix_len();
    (host && target.port.is_some()).then_some(target)
}

/// Whether `peer` is `target`'s destination.
pub fn reaches(target: &Target, peer: SocketAddr) -> bool {
    target.net.contains(&peer.ip()) && target.port.is_none_or(|p| p == peer.port())
}

/// The kernel side of egress grants for one agent.
pub struct KernelGrants {
    base: Allowlist,
    enforcer: Weak<Mutex<Enforcer>>,
}

impl KernelGrants {
    /// Grants over `base` (the planned allowlist) in `enforcer`'s maps.
    pub fn new(base: Allowlist, enforcer: Weak<Mutex<Enforcer>>) -> Self {
        KernelGrants { base, enforcer }
    }

    /// Writes the allowlist with the grants `in_force`, then destroys the
    /// open connections to the destination of each grant of `ended` that
    /// neither the planned rules nor another grant in force still allows.
    pub fn apply(&self, in_force: &[Grant], ended: &[Grant]) -> Result<DestroyReport, KernelError> {
        let Some(enforcer) = self.enforcer.upgrade() else {
            return Ok(DestroyReport::default());
        };
        let allowlist = overlay(&self.base, in_force);
        let mut enf = enforcer.lock().unwrap_or_else(PoisonError::into_inner);
        enf.update_allowlist(&allowlist)?;
        let cut: Vec<Target> = ended.iter().filter_map(egress_target).collect();
        if cut.is_empty() {
            return Ok(DestroyReport::default());
        }
        let kept: Vec<Target> = allowlist.rules().iter().map(|r| r.target).collect();
        enf.destroy_sockets_to(|peer| {
            cut.iter().any(|t| reaches(t, peer)) && !kept.iter().any(|t| reaches(t, peer))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::{GrantRequest, GrantState};

    fn grant(kind: GrantKind, target: &str) -> Grant {
        Grant {
            id: "g-1".into(),
            request: GrantRequest {
                agent: "a".into(),
                kind,
                target: target.into(),
                purpose: "p".into(),
                ttl_secs: 60,
                requested_by: "a".into(),
            },
            state: GrantState::Approved,
            decided_by: None,
            reason: None,
            created_at: 0,
            expires_at: Some(u64::MAX),
        }
    }

    #[test]
    fn only_one_address_and_port_is_added() {
        let base = Allowlist::new();
        let all = overlay(
            &base,
            &[
                grant(GrantKind::Egress, "198.51.100.9:8080"),
                grant(GrantKind::Egress, "198.51.100.0/24:8080"),
                grant(GrantKind::Egress, "198.51.100.9"),
                grant(GrantKind::Egress, "pay.tools.test:443"),
                grant(GrantKind::Tool, "198.51.100.9:8080"),
            ],
        );
        assert_eq!(all.rules().len(), 1);
        let t = all.rules()[0].target;
        assert!(reaches(&t, "198.51.100.9:8080".parse().unwrap()));
        assert!(!reaches(&t, "198.51.100.9:8081".parse().unwrap()));
        assert!(!reaches(&t, "198.51.100.10:8080".parse().unwrap()));
        assert_eq!(all.rules()[0].protocols, Protocols::Tcp);
    }
}
