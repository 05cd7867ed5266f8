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

mod decl;
mod engine;
mod local;
mod shared;

pub use decl::{Measure, QuotaDecl, QuotaScope, Unavailable, Window};
pub use engine::{QuotaError, QuotaStats, Quotas};
pub use shared::SharedCounters;
