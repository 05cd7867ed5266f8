//! `run`'s first phase: what the agent may reach. The `--policy` files, the
//! `--allow` flags and, with a gateway, the tool hosts of its policy set,
//! merged into the address allowlist (kernel) and the name allowlist
//! (resolver and proxies), with the ports the transparent proxy takes.

use std::{path::PathBuf, sync::Arc};

use super::{
    AllowArg, RunError, RunOptions,
    gateway::{self, GatewayPolicy},
};
use crate::{
    egress::{Allowlist, EgressRule, NameAllowlist, NameRule, Protocols, RuleSource},
    policy::{PolicyError, load_policy_files, reload::ReloadObserver},
};

/// Everything the agent may reach, and the gateway's policy when one runs.
pub(crate) struct EgressPlan {
    /// Addresses (the kernel's maps).
    pub(crate) allowlist: Allowlist,
    /// Names (the resolver and the proxies); each rule's `learn` is set.
    pub(crate) names: NameAllowlist,
    /// Ports the transparent proxy takes (`--intercept-port` and the
    /// gateway's tool ports).
    pub(crate) intercept_ports: Vec<u16>,
    /// The tier policy of the agent, with `--policy-dir`.
    pub(crate) gateway: Option<GatewayPolicy>,
}

impl EgressPlan {
    /// Loads and merges every source of `opts` for `agent_id`.
    pub(crate) fn build(
        opts: &RunOptions,
        agent_id: &str,
        observer: &Arc<dyn ReloadObserver>,
    ) -> Result<Self, RunError> {
        let gateway = opts
            .gateway
            .as_ref()
            .map(|g| gateway::load_policy(g, agent_id, observer))
            .transpose()?;
        let mut intercept_ports = opts.names.intercept_ports.clone();
        let (mut allowlist, mut names) = merge(&opts.policies, &opts.allow)?;
        if let Some(gp) = &gateway {
            for &p in &gp.ports {
                if !intercept_ports.contains(&p) {
                    intercept_ports.push(p);
                }
            }
            for rule in gp.egress.rules() {
                allowlist.push(rule.clone());
            }
            for rule in gp.names.rules() {
                names.push(rule.clone());
            }
        }
        let names = mark_learning(names, &intercept_ports);
        Ok(EgressPlan {
            allowlist,
            names,
            intercept_ports,
            gateway,
        })
    }
}

/// Merges policy files and `--allow` flags into the address allowlist and
/// the name allowlist.
fn merge(
    policies: &[PathBuf],
    allow: &[AllowArg],
) -> Result<(Allowlist, NameAllowlist), PolicyError> {
    let (mut list, mut names) = load_policy_files(policies)?;
    for (i, arg) in allow.iter().enumerate() {
        match arg {
            AllowArg::Address(target) => list.push(EgressRule {
                target: *target,
                protocols: Protocols::Any,
                source: RuleSource::Flag(i + 1),
            }),
            AllowArg::Name(rule) => {
                let mut rule = rule.clone();
                rule.source = Some(RuleSource::Flag(i + 1));
                names.push(rule);
            }
        }
    }
    Ok((list, names))
}

/// Marks the name rules that cover a port the transparent proxy does not
/// take: the addresses their names resolve to are then allowed in the
/// kernel (learned). Applied once, to every rule whatever its source.
fn mark_learning(names: NameAllowlist, intercept_ports: &[u16]) -> NameAllowlist {
    names
        .rules()
        .iter()
        .cloned()
        .map(|mut rule| {
            rule.learn = learns(&rule, intercept_ports);
            rule
        })
        .collect()
}

fn learns(rule: &NameRule, intercept_ports: &[u16]) -> bool {
    match &rule.ports {
        None => true,
        Some(ports) => ports.iter().any(|p| !intercept_ports.contains(p)),
    }
}
