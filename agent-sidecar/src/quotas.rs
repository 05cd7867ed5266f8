//! Quotas and cumulative limits: calls, tier-2+ actions, declared amounts
//! and bytes out per agent, team or organisation over a fixed window.
//!
//! A limit reached is a policy decision like any other: the decision is
//! raised to the limit's `on_reach` tier (3: an approver must say yes; 4:
//! halt) with the limit named among the deciding rules, so it is explained
//! and audited with the call. Counters are local (in memory, persisted in
//! the state directory so a restart does not reset a day's money total) or
//! shared in Redis (`--quota-redis`), incremented and checked atomically by
//! one Lua script, as Envoy's global rate limit service does. When Redis
//! cannot be reached each limit does what its `on_unavailable` says; every
//! fail-open is counted and logged.

mod engine;
mod local;
mod shared;

pub use crate::policy::quota::{Measure, QuotaDecl, QuotaScope, Unavailable, Window};
pub use engine::{QuotaError, QuotaStats, Quotas};
pub use shared::SharedCounters;

use std::{path::Path, time::Duration};

use crate::policy::CompiledPolicySet;

/// How long a shared-counter command may take before the limit's
/// `on_unavailable` applies.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// The quotas of agent `agent` in `set` (possibly none yet), counted in
/// `redis` when given, else locally with the money totals kept in
/// `state_dir`; their metrics registered in `registry`. A policy reload
/// puts the reloaded set's limits in force ([`Quotas::set_limits`], done
/// by the gateway), keeping the counters. A Redis unreachable at start is
/// an error (the sidecar does not start); once started, an unreachable
/// Redis makes each limit follow its `on_unavailable` until it answers
/// again.
pub async fn for_agent(
    set: &CompiledPolicySet,
    agent: &str,
    state_dir: &Path,
    redis: Option<&str>,
    registry: Option<&prometheus::Registry>,
) -> Result<Quotas, QuotaError> {
    let limits = set.quotas(agent).to_vec();
    let shared = match redis {
        None => None,
        Some(url) => Some(
            SharedCounters::connect(url, REDIS_TIMEOUT)
                .await
                .map_err(|e| QuotaError::Redis(url.to_string(), e))?,
        ),
    };
    let (org, currency) = set.organisation();
    let q = Quotas::new(org, limits, Some(state_dir), shared)?.with_currency(currency);
    if let Some(r) = registry {
        q.register(r).map_err(QuotaError::Metrics)?;
    }
    Ok(q)
}
