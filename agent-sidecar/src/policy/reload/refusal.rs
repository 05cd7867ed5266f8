//! Why a policy set that compiles was still not put in force: it may be a
//! set caught half-way through an update.

use super::super::manifest::ManifestError;

/// Why a reload kept the last-known-good set although the new files
/// compile.
#[derive(Debug, thiserror::Error)]
pub enum ReloadRefusal {
    /// The bundle manifest does not match the files next to it.
    #[error("the policy bundle manifest does not match the policy files: {0}")]
    Manifest(#[from] ManifestError),
    /// Files written in place would take rules or declarations away.
    #[error(
        "the policy files were written in place and the set read would take away what is in force (an update caught half-way looks like this):\n  {}\n  help: publish removals and loosening atomically: write the new files elsewhere and rename them into place (or swap a symlink to the directory), or add a SHA256SUMS manifest written last",
        .changes.join("\n  ")
    )]
    TakesAway {
        /// The changes, as `policy diff` prints them.
        changes: Vec<String>,
    },
}

impl ReloadRefusal {
    /// The `reason` label of `agent_sidecar_policy_reload_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ReloadRefusal::Manifest(_) => "manifest_mismatch",
            ReloadRefusal::TakesAway { .. } => "in_place_takes_away",
        }
    }
}
