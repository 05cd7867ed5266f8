//! The RFC 6962 Merkle tree over the log's records.
//!
//! Leaf `i` is record `seq = i`; its hash is [`leaf_hash`] of the record's
//! stored line. The tree is kept two ways:
//!
//! - [`CompactRange`]: the roots of the perfect subtrees that make up a
//!   tree of any size (one per set bit of the size), enough to append a
//!   leaf and to compute the root in O(log n) hashes;
//! - [`TreeFiles`]: every complete node, one file per level, written as
//!   leaves are appended, so a proof reads O(log n) stored hashes instead
//!   of rehashing the history, and a restart continues where the files
//!   end.
//!
//! Proofs follow RFC 6962 section 2.1 (PATH and SUBPROOF) and are checked
//! with the verification algorithms of RFC 9162 section 2.1.3.2 and
//! 2.1.4.2, so any RFC 6962 verifier accepts them.

use thiserror::Error;

use super::hash::{Hash, node_hash};

mod levels;
mod range;

pub use levels::{TreeFiles, TreeFilesError};
pub use range::{CompactRange, NodeSource};

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The RFC 6962 hash of leaves `[start, end)` (`start < end`), read from
/// the complete nodes of `source`.
pub fn subtree_hash<S: NodeSource>(source: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let n = end - start;
    debug_assert!(n > 0);
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return source.node(n.trailing_zeros(), start >> n.trailing_zeros());
    }
    let k = split_point(n);
    let left = subtree_hash(source, start, start + k)?;
    let right = subtree_hash(source, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root of the first `size` leaves of `source`.
pub fn root<S: NodeSource>(source: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(Hash::empty());
    }
    subtree_hash(source, 0, size)
}

/// Why a proof could not be made.
#[derive(Debug, Error)]
pub enum ProveError<E> {
    /// The request is out of range.
    #[error("{0}")]
    Range(String),
    /// A stored node could not be read.
    #[error(transparent)]
    Source(E),
}

/// The RFC 6962 audit path (PATH) of leaf `index` in the tree of `size`
/// leaves, from the leaf's sibling up.
pub fn inclusion_proof<S: NodeSource>(
    source: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    if index >= size {
        return Err(ProveError::Range(format!(
            "leaf {index} is not in a tree of {size} leaves"
        )));
    }
    let mut out = Vec::with_capacity(64);
    path(source, index, 0, size, &mut out).map_err(ProveError::Source)?;
    Ok(out)
}

fn path<S: NodeSource>(
    source: &S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if n == 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < start + k {
        path(source, m, start, start + k, out)?;
        out.push(subtree_hash(source, start + k, end)?);
    } else {
        path(source, m, start + k, end, out)?;
        out.push(subtree_hash(source, start, start + k)?);
    }
    Ok(())
}

/// The RFC 6962 consistency proof (PROOF) between the trees of `size1` and
/// `size2` leaves; empty when `size1` is 0 or equals `size2`.
pub fn consistency_proof<S: NodeSource>(
    source: &S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    if size1 > size2 {
        return Err(ProveError::Range(format!(
            "a tree of {size1} leaves cannot be a prefix of one of {size2}"
        )));
    }
    let mut out = Vec::with_capacity(64);
    if size1 == 0 || size1 == size2 {
        return Ok(out);
    }
    subproof(source, size1, 0, size2, true, &mut out).map_err(ProveError::Source)?;
    Ok(out)
}

fn subproof<S: NodeSource>(
    source: &S,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if m == end {
        if !whole {
            out.push(subtree_hash(source, start, end)?);
        }
        return Ok(());
    }
    let k = split_point(end - start);
    if m - start <= k {
        subproof(source, m, start, start + k, whole, out)?;
        out.push(subtree_hash(source, start + k, end)?);
    } else {
        subproof(source, m, start + k, end, false, out)?;
        out.push(subtree_hash(source, start, start + k)?);
    }
    Ok(())
}

/// Why a proof does not verify.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProofError {
    /// The indices or sizes cannot describe a proof.
    #[error("{0}")]
    Range(String),
    /// The proof has the wrong number of hashes for its sizes.
    #[error("the proof has {got} hashes where {want} are needed")]
    Length {
        /// Hashes needed.
        want: usize,
        /// Hashes given.
        got: usize,
    },
    /// The hashes do not lead to the expected root.
    #[error("the proof leads to root {computed}, not to {expected}")]
    Mismatch {
        /// The root the proof was checked against.
        expected: Hash,
        /// What the proof computes.
        computed: Hash,
    },
}

/// Number of hashes in the inclusion proof of `index` in a tree of `size`.
fn inclusion_len(index: u64, size: u64) -> usize {
    // Inner nodes on the path: bits below the highest bit where index and
    // size - 1 differ, plus the set bits above it.
    let last = size - 1;
    let inner = 64 - (index ^ last).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// The root that an inclusion proof of `leaf` at `index` leads to in a
/// tree of `size` leaves (RFC 9162 section 2.1.3.2).
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::Range(format!(
            "leaf {index} is not in a tree of {size} leaves"
        )));
    }
    let want = inclusion_len(index, size);
    if proof.len() != want {
        return Err(ProofError::Length {
            want,
            got: proof.len(),
        });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::Length {
                want,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Length {
            want,
            got: proof.len(),
        });
    }
    Ok(r)
}

/// Checks that `proof` shows `leaf` at `index` in the tree of `size` leaves
/// with root `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion(index, size, leaf, proof)?;
    if computed != *root {
        return Err(ProofError::Mismatch {
            expected: *root,
            computed,
        });
    }
    Ok(())
}

/// Checks that the tree of `size2` leaves with root `root2` extends the
/// tree of `size1` leaves with root `root1` (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::Range(format!(
            "a tree of {size1} leaves cannot be a prefix of one of {size2}"
        )));
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::Length {
                want: 0,
                got: proof.len(),
            });
        }
        if root1 != root2 {
            return Err(ProofError::Mismatch {
                expected: *root1,
                computed: *root2,
            });
        }
        return Ok(());
    }
    if size1 == 0 {
        if !proof.is_empty() {
            return Err(ProofError::Length {
                want: 0,
                got: proof.len(),
            });
        }
        return Ok(());
    }
    // Length check: the hashes SUBPROOF emits for these sizes.
    let want = consistency_len(size1, size2);
    if proof.len() != want {
        return Err(ProofError::Length {
            want,
            got: proof.len(),
        });
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(*root1);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::Length {
                want,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Length {
            want,
            got: proof.len(),
        });
    }
    if fr != *root1 {
        return Err(ProofError::Mismatch {
            expected: *root1,
            computed: fr,
        });
    }
    if sr != *root2 {
        return Err(ProofError::Mismatch {
            expected: *root2,
            computed: sr,
        });
    }
    Ok(())
}

/// Number of hashes in the consistency proof between `size1` and `size2`
/// (`0 < size1 < size2`).
fn consistency_len(size1: u64, size2: u64) -> usize {
    // The proof is the inclusion path of leaf size1 - 1 in the tree of
    // size2, minus the levels where that leaf's subtree is whole in both
    // trees, plus the old subtree's root unless size1 is a power of two.
    let trailing = size1.trailing_zeros();
    let path = inclusion_len((size1 - 1) >> trailing, ((size2 - 1) >> trailing) + 1);
    path + usize::from(!size1.is_power_of_two())
}

#[cfg(test)]
mod tests;
