//! Egress allowlists: what an agent may reach at the kernel level.

mod allowlist;
pub mod doh;
pub mod name;
mod target;

pub use allowlist::{Allowlist, EgressRule, Protocols, RuleSource};
pub use name::{
    Breadth, Endpoint, NameAllowlist, NameError, NameErrorKind, NamePattern, NameRule, PatternKind,
};
pub use target::{Target, TargetError};
