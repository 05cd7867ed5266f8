//! Indices into the tables of a compiled set: tools, actions (over all
//! tools), rules and scopes (one document's rules).

/// Index of a tool in [`CompiledPolicySet`](super::set::CompiledPolicySet).
pub(crate) type ToolId = u32;
/// Index of an action (over all tools).
pub(crate) type ActionId = u32;
/// Index of a rule.
pub(crate) type RuleId = u32;
/// Index of a scope (one document's rules).
pub(crate) type ScopeId = u32;
