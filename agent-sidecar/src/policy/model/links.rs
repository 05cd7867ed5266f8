//! [`Hierarchy`]: how the documents of a set are linked (built by
//! `policy/hierarchy.rs`).

use std::collections::HashMap;

/// Parent links between documents (indices into the parsed documents).
#[derive(Debug)]
pub(crate) struct Hierarchy {
    pub(crate) base: usize,
    pub(crate) agents: HashMap<String, usize>,
    pub(crate) overlays: HashMap<String, usize>,
    /// Direct parents of each document.
    pub(crate) parents: Vec<Vec<usize>>,
}
