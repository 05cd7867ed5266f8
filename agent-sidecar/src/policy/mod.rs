//! Policy files. This version carries the egress allowlist; see
//! `docs/policy.md` for the format.

mod file;

pub use file::{PolicyError, PolicyFile, load_policy_files};
