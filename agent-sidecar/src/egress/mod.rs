//! Egress allowlists: what an agent may reach at the kernel level.

mod allowlist;
mod target;

pub use allowlist::{Allowlist, EgressRule, Protocols, RuleSource};
pub use target::{Target, TargetError};
