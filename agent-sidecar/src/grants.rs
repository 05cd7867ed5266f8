//! Just-in-time grants: an approver gives one agent a tool, an action, a
//! tier ceiling or an egress destination for a bounded time and purpose.
//!
//! A grant is requested (by the agent or an operator), then approved or
//! denied by an approver who is never the agent itself, then in force
//! until it expires or is revoked. What may be granted at all is bounded
//! by [`GrantBounds`] (kinds, targets, the longest TTL, the approvers): a
//! request outside them is refused when it is made. The store
//! ([`GrantStore`]) persists every grant in the state directory, so an
//! approved grant survives a restart and an expired one stays expired.

pub mod api;
pub mod decision;
pub mod egress;
mod model;
mod sink;
mod store;

pub use decision::GrantsInForce;
pub use model::{Grant, GrantBounds, GrantError, GrantKind, GrantRequest, GrantState};
pub use sink::{GrantEvent, GrantSink, GrantStep};
pub use store::{GrantStore, run_expiry};
