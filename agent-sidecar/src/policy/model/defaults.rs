//! The tiers that apply without a rule: the built-in and declared
//! defaults ([`Floor`]s) in force for an agent or an overlay.

use std::sync::Arc;

use super::tier::Tier;

/// A tier that applies without a rule: a default or an action's baseline,
/// with where it was set.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Floor {
    pub(crate) tier: Tier,
    /// Pseudo rule id: `defaults.unknown`, `defaults.missing_attribute`,
    /// `defaults.action` or `tools.TOOL.actions.ACTION`.
    pub(crate) id: Arc<str>,
    /// The level that set it (`base acme`, `team finance`...).
    pub(crate) level: Arc<str>,
    /// `file:line:col`, or `built-in`.
    pub(crate) source: Arc<str>,
}

/// The built-in defaults: unknown 3, missing attribute 3, action 1.
pub(crate) fn built_in(field: usize) -> Tier {
    [Tier::Approval, Tier::Approval, Tier::Autonomous][field]
}

/// The names of the default fields, in `floors` order.
pub(crate) const DEFAULT_FIELDS: [&str; 3] = ["unknown", "missing_attribute", "action"];

/// The default tiers in force for one agent (or overlay).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EffectiveDefaults {
    pub(crate) unknown: Floor,
    pub(crate) missing_attribute: Floor,
    pub(crate) action: Floor,
}

/// An overlay's own defaults: only those it sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct OverlayDefaults {
    pub(crate) unknown: Option<Floor>,
    pub(crate) missing_attribute: Option<Floor>,
    pub(crate) action: Option<Floor>,
}
