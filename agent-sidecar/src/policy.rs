//! The tier policy engine: for every tool action, whether it is
//! autonomous (tier 1), supervised (2), needs approval (3), halts and
//! escalates (4) or is denied.
//!
//! It follows the data flow:
//!
//! - `model`: what everything else works on: the source [`Snapshot`] of a
//!   policy directory, the YAML [`document`]s (base, team, role, agent,
//!   overlay), the [`Action`] model, the [`Decision`], [`Tier`],
//!   [`PolicyVersion`], locations and errors, and the
//!   [`CompiledPolicySet`] with every table it holds (tools, rules,
//!   defaults, vocabulary, the gateway's table) and the document links
//!   the compile steps share;
//! - compile steps (`hierarchy`, `tools`, `rules`, `tighten`, [`gateway`]):
//!   linking the documents, compiling tool declarations and rules,
//!   refusing any child that would loosen its parents; each imports the
//!   model and no other step, and [`CompiledPolicySet::compile`]
//!   (`compile`) ties them together;
//! - evaluation, on the compiled set only:
//!   [`CompiledPolicySet::action_from_request`] recognises and extracts,
//!   [`CompiledPolicySet::decide`] -> [`Decision`],
//!   [`CompiledPolicySet::explain`] -> [`Explanation`];
//! - operator tooling: [`diff`], [`fixtures`] (scenario tests), [`schema`];
//! - [`reload`]: the [`PolicyStore`] the gateway decides with, hot-reloaded
//!   from the directory with last-known-good kept on error, reporting to a
//!   [`reload::ReloadObserver`].
//!
//! The egress policy file (`version: 1`) lives in [`crate::egress`] and is
//! re-exported here for the command line. See `docs/policy.md` for the
//! formats.

mod compile;
mod decide;
pub mod diff;
mod explain;
mod extract;
pub mod fixtures;
pub mod gateway;
mod hierarchy;
mod lookalike;
pub mod manifest;
mod model;
pub mod promote;
mod redact;
pub mod reload;
mod resolve;
mod rules;
pub mod schema;
mod tighten;
mod tools;

pub use crate::egress::{
    AllowEntry, EgressSection, NameEntry, PolicyError, PolicyFile, load_policy_files,
};
pub use model::{
    action, approval_chain, delegation, detection, document, grantable, quota, source, version,
};
use model::{
    attribute, condition, decision, defaults, error, gateway_table, index, interned, links,
    location, names, redaction, scoped_doc, set, tier, tool, vocab,
};

pub use action::{
    Action, ActionInput, ActionTarget, AgentIdentity, Attributes, HttpRequest, McpCall, Money,
    Request, Reversibility,
};
pub use document::document_kind;
pub use error::{CompileError, Problem};
pub use explain::{DefaultReport, Explanation, LevelReport, RuleReport};
pub use location::Location;
pub use model::decision::{DecidingRule, Decision};
pub use reload::{PolicyStore, ReloadOutcome, StoreOptions, WatchOptions, watch};
pub use set::{CompiledPolicySet, SetSummary};
pub use source::Snapshot;
pub use tier::Tier;
pub use version::PolicyVersion;

#[cfg(test)]
mod test_support;
