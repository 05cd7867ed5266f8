//! Shadow policies: a candidate policy set decides the same actions as the
//! set in force, without enforcing anything, and every decision that would
//! differ is counted and recorded.
//!
//! - [`compare`]: one action under both sets; a [`Difference`] when the
//!   tier or the deciding rules differ.
//! - [`replay`]: the recorded tool calls of an audit trail decided again
//!   under two policy directories (`agent-sidecar policy shadow-report
//!   --replay`): exactly the decisions that would change, grouped by
//!   change, with the agents and example audit record ids.
//! - [`Shadow`]: the candidate beside the active set on live traffic
//!   (`--shadow-policies`): each difference counted and recorded.
//! - [`ShadowReport`]: the differences grouped for people (text) and
//!   tools (JSON).

mod compare;
mod live;
mod replay;
mod report;

pub use compare::{Difference, Verdict, compare};
pub use live::{Shadow, ShadowEvent, ShadowSink};
pub use replay::{ReplayError, recorded, replay, replay_dirs};
pub use report::{Change, ShadowReport};

#[cfg(test)]
mod tests;
