//! Tier 2's reversal window: a forwarded call whose action declares a
//! `compensation` is remembered until the window closes (`entries`), and
//! its owner may trigger the compensating action through the admin API
//! meanwhile (`trigger`): an HTTP request built from the original one, or
//! a call of an MCP tool (`mcp`), each decided and sent by `exchange`.

mod entries;
mod error;
mod exchange;
mod mcp;
mod trigger;

pub(crate) use entries::params_of;
pub use entries::{Compensable, Compensations, Original};
pub use error::CompensationError;
pub(crate) use exchange::Trigger;
pub(crate) use trigger::trigger;
