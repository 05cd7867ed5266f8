//! Egress allowlists: what an agent may reach at the kernel level.

mod allowlist;
pub mod doh;
mod file;
pub mod name;
mod target;

pub use allowlist::{Allowlist, EgressRule, Protocols, RuleSource};
pub use file::{AllowEntry, EgressSection, NameEntry, PolicyError, PolicyFile, load_policy_files};
pub use name::{
    Breadth, Endpoint, NameAllowlist, NameError, NameErrorKind, NamePattern, NameRule, PatternKind,
};
pub use target::{Target, TargetError};
