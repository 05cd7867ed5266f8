//! [`Doc`]: one document as the compile steps see it, with its scope and
//! level, and what its `defaults` and kind mean for them.

use std::sync::Arc;

use super::{
    defaults::{DEFAULT_FIELDS, Floor},
    document::{Defaults, Document, Kind, Parsed},
    index::ScopeId,
};

/// One document being compiled.
pub(crate) struct Doc<'a> {
    pub(crate) parsed: &'a Parsed,
    /// Its scope (= its index).
    pub(crate) scope: ScopeId,
    /// `team finance`...
    pub(crate) level: Arc<str>,
}

impl Doc<'_> {
    pub(crate) fn doc(&self) -> &Document {
        &self.parsed.doc
    }
}

/// The floors a document's `defaults` sets.
pub(crate) fn floors(doc: &Doc<'_>, d: &Defaults) -> [Option<Floor>; 3] {
    let mut out: [Option<Floor>; 3] = Default::default();
    for (i, t) in [d.unknown, d.missing_attribute, d.action]
        .into_iter()
        .enumerate()
    {
        out[i] = t.map(|tier| Floor {
            tier,
            id: format!("defaults.{}", DEFAULT_FIELDS[i]).into(),
            level: doc.level.clone(),
            source: doc
                .parsed
                .at(&format!("defaults.{}", DEFAULT_FIELDS[i]))
                .to_string()
                .into(),
        });
    }
    out
}

/// Whether `kind` documents may name tools declared anywhere (overlays apply
/// to every agent).
pub(crate) fn sees_every_tool(kind: Kind) -> bool {
    kind == Kind::Overlay
}
