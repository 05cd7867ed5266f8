//! Policy versions: the SHA-256 of the set's files (paths and bytes) plus
//! the human label from the base document. Every decision carries both.

use std::{fmt, sync::Arc};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::source::Snapshot;

/// Which policy set made a decision.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct PolicyVersion {
    /// Hex SHA-256 of the set's files: for each file in path order, its
    /// `/`-separated path, a NUL, its length in bytes as decimal, a NUL and
    /// its bytes.
    pub hash: Arc<str>,
    /// `label` of the base document, e.g. `2026.11.21-1`.
    pub label: Arc<str>,
}

impl PolicyVersion {
    /// The first 12 hex digits of the hash, as shown in logs and metrics.
    pub fn short(&self) -> &str {
        &self.hash[..self.hash.len().min(12)]
    }

    /// Whether `prefix` (at least 4 hex digits) names this version.
    pub fn matches(&self, prefix: &str) -> bool {
        let prefix = prefix.strip_prefix("sha256:").unwrap_or(prefix);
        prefix.len() >= 4 && self.hash.starts_with(prefix)
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (sha256:{})", self.label, self.short())
    }
}

/// The content hash of a snapshot (see [`PolicyVersion::hash`]).
pub fn content_hash(snapshot: &Snapshot) -> String {
    let mut h = Sha256::new();
    for f in &snapshot.files {
        h.update(f.path.as_bytes());
        h.update([0]);
        h.update(f.text.len().to_string().as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
