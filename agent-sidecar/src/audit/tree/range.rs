//! What the tree's files and proofs share: [`NodeSource`] (where complete
//! subtree hashes are read from) and [`CompactRange`] (the perfect
//! subtrees of a tree of any size).

use crate::audit::hash::{Hash, node_hash};

/// Where proofs read complete subtree hashes from.
pub trait NodeSource {
    /// Why a node could not be read.
    type Error;

    /// The hash of the complete subtree of `2^level` leaves that starts at
    /// leaf `index << level`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The roots of the perfect subtrees of a tree of `size` leaves, largest
/// first: what appending needs, and what the root is folded from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    nodes: Vec<Hash>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    /// Reads the perfect subtrees of a tree of `size` leaves from `source`.
    pub fn from_source<S: NodeSource>(source: &S, size: u64) -> Result<CompactRange, S::Error> {
        let mut nodes = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64).rev() {
            if size & (1u64 << level) != 0 {
                nodes.push(source.node(level, start >> level)?);
                start += 1u64 << level;
            }
        }
        Ok(CompactRange { size, nodes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; `completed` is called with every node this
    /// completes, lowest level first (the leaf itself is level 0).
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(u32, &Hash)) {
        let mut hash = leaf;
        let mut level = 0;
        completed(0, &hash);
        let mut s = self.size;
        while s & 1 == 1 {
            let left = self.nodes.pop().expect("one node per set bit of the size");
            hash = node_hash(&left, &hash);
            level += 1;
            completed(level, &hash);
            s >>= 1;
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// The root hash (SHA-256 of nothing for the empty tree).
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(last) = it.next() else {
            return Hash::empty();
        };
        it.fold(*last, |right, left| node_hash(left, &right))
    }
}
