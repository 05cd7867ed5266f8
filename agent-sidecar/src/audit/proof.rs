//! `audit prove` and `audit check-proof`: inclusion and consistency
//! proofs as JSON documents that anyone can check without the log, with
//! `agent-sidecar audit check-proof` or any RFC 6962 verifier.
//!
//! An inclusion proof carries the record's line, so the checker hashes the
//! record itself; both kinds carry the signed checkpoint of their tree
//! size when the log signed one, so the root is tied to the log's key.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{
    checkpoint::{HISTORY_FILE, NoteVerifier, SignedCheckpoint, split_notes},
    hash::{Hash, leaf_hash},
    store::{
        TREE_DIR,
        segment::{Line, LineReader, list_segments, locate, peek_seq_time},
    },
    tree::{
        TreeFiles, TreeFilesError, consistency_proof, inclusion_proof, root, verify_consistency,
        verify_inclusion,
    },
};

/// A proof document, as `audit prove` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProofDoc {
    /// A record is in the tree of `tree_size` records.
    Inclusion(InclusionProof),
    /// The tree of `size2` records extends the tree of `size1` records.
    Consistency(ConsistencyProof),
}

/// RFC 6962 inclusion proof of one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The record's sequence number (leaf index).
    pub seq: u64,
    /// Size of the tree the proof is for.
    pub tree_size: u64,
    /// The record's line, as stored (its leaf hash is SHA-256(0x00 ||
    /// line)); absent when retention deleted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The record's leaf hash.
    pub leaf_hash: Hash,
    /// The audit path, from the leaf's sibling up (hex).
    pub hashes: Vec<Hash>,
    /// The root of the tree of `tree_size` records.
    pub root: Hash,
    /// The signed checkpoint of `tree_size`, when the log signed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// RFC 6962 consistency proof between two tree sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The older tree's size.
    pub size1: u64,
    /// The newer tree's size.
    pub size2: u64,
    /// Root of the older tree.
    pub root1: Hash,
    /// Root of the newer tree.
    pub root2: Hash,
    /// The proof's hashes (hex).
    pub hashes: Vec<Hash>,
    /// Signed checkpoint of `size1`, when the log signed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint1: Option<String>,
    /// Signed checkpoint of `size2`, when the log signed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint2: Option<String>,
}

/// Why a proof could not be made.
#[derive(Debug, Error)]
pub enum ProveError {
    /// The log's files could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The tree files could not be read.
    #[error("{0}")]
    Tree(#[from] TreeFilesError),
    /// The request does not fit the log.
    #[error("{0}")]
    Range(String),
}

/// The signed checkpoints of the log, by size.
fn checkpoints(dir: &Path) -> Vec<SignedCheckpoint> {
    let content = std::fs::read_to_string(dir.join(HISTORY_FILE)).unwrap_or_default();
    split_notes(&content)
        .into_iter()
        .filter_map(|(_, n)| SignedCheckpoint::parse_unverified(&n).ok())
        .collect()
}

fn note_of(cps: &[SignedCheckpoint], size: u64, root: &Hash) -> Option<String> {
    cps.iter()
        .rev()
        .find(|c| c.checkpoint.size == size && c.checkpoint.root == *root)
        .map(|c| c.note.clone())
}

fn open_tree(dir: &Path) -> Result<TreeFiles, ProveError> {
    let path = dir.join(TREE_DIR);
    if !path.is_dir() {
        return Err(ProveError::Io {
            path,
            source: io::Error::new(io::ErrorKind::NotFound, "not an audit log directory"),
        });
    }
    Ok(TreeFiles::open_read_only(&path)?)
}

/// The inclusion proof of record `seq` in the tree of `size` records
/// (default: the latest signed checkpoint's size when it holds the record,
/// else the whole tree).
pub fn prove_inclusion(
    dir: &Path,
    seq: u64,
    size: Option<u64>,
) -> Result<InclusionProof, ProveError> {
    let tree = open_tree(dir)?;
    let cps = checkpoints(dir);
    let size = size.unwrap_or_else(|| {
        cps.last()
            .map(|c| c.checkpoint.size)
            .filter(|&s| s > seq && s <= tree.size())
            .unwrap_or(tree.size())
    });
    if size > tree.size() {
        return Err(ProveError::Range(format!(
            "the log holds {} records, not {size}",
            tree.size()
        )));
    }
    if seq >= size {
        return Err(ProveError::Range(format!(
            "record {seq} is not in the first {size} records"
        )));
    }
    let hashes = inclusion_proof(&tree, seq, size).map_err(|e| match e {
        crate::audit::tree::ProveError::Range(m) => ProveError::Range(m),
        crate::audit::tree::ProveError::Source(e) => ProveError::Tree(e),
    })?;
    let leaf = tree.leaves(seq, 1)?[0];
    let root = root(&tree, size)?;
    let record = read_line(dir, seq)?;
    if let Some(line) = &record
        && leaf_hash(line.as_bytes()) != leaf
    {
        return Err(ProveError::Range(format!(
            "record {seq} does not hash to its stored leaf: the log was changed; run `agent-sidecar audit verify {}`",
            dir.display()
        )));
    }
    Ok(InclusionProof {
        seq,
        tree_size: size,
        record,
        leaf_hash: leaf,
        hashes,
        checkpoint: note_of(&cps, size, &root),
        root,
    })
}

/// The stored line of record `seq` (`None` when deleted by retention).
pub fn read_line(dir: &Path, seq: u64) -> Result<Option<String>, ProveError> {
    let segments = list_segments(dir).map_err(|source| ProveError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let Some((seg, offset)) = locate(&segments, seq).map_err(|source| ProveError::Io {
        path: dir.to_path_buf(),
        source,
    })?
    else {
        return Ok(None);
    };
    let io = |source| ProveError::Io {
        path: seg.records.clone(),
        source,
    };
    let mut r = LineReader::open(&seg.records, offset).map_err(io)?;
    while let Some(Line::Whole(_, line)) = r.next_line().map_err(io)? {
        match peek_seq_time(line) {
            Some((s, _)) if s == seq => {
                return Ok(Some(String::from_utf8_lossy(line).into_owned()));
            }
            Some((s, _)) if s > seq => break,
            _ => {}
        }
    }
    Ok(None)
}

/// The consistency proof between the trees of `size1` and `size2` records.
pub fn prove_consistency(
    dir: &Path,
    size1: u64,
    size2: u64,
) -> Result<ConsistencyProof, ProveError> {
    let tree = open_tree(dir)?;
    if size2 > tree.size() {
        return Err(ProveError::Range(format!(
            "the log holds {} records, not {size2}",
            tree.size()
        )));
    }
    if size1 > size2 {
        return Err(ProveError::Range(format!(
            "--from {size1} is larger than --to {size2}"
        )));
    }
    let hashes = consistency_proof(&tree, size1, size2).map_err(|e| match e {
        crate::audit::tree::ProveError::Range(m) => ProveError::Range(m),
        crate::audit::tree::ProveError::Source(e) => ProveError::Tree(e),
    })?;
    let root1 = root(&tree, size1)?;
    let root2 = root(&tree, size2)?;
    let cps = checkpoints(dir);
    Ok(ConsistencyProof {
        size1,
        size2,
        checkpoint1: note_of(&cps, size1, &root1),
        checkpoint2: note_of(&cps, size2, &root2),
        root1,
        root2,
        hashes,
    })
}

/// Why a proof does not check.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckError {
    /// The hashes do not prove the claim.
    #[error("the proof does not verify: {0}")]
    Proof(String),
    /// The record in the proof does not hash to its leaf.
    #[error(
        "the record in the proof does not hash to the proof's leaf hash: the record was changed"
    )]
    Record,
    /// The checkpoint does not verify or does not match the proof.
    #[error("the checkpoint {0}")]
    Checkpoint(String),
}

/// What a proof showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// In words.
    pub summary: String,
    /// Whether a signed checkpoint tied the root to the key.
    pub signed: bool,
}

/// Checks a proof document; with a verifier, also the signed checkpoint
/// (given, or carried by the proof) of its tree size.
pub fn check(
    doc: &ProofDoc,
    checkpoint: Option<&str>,
    key: Option<&NoteVerifier>,
) -> Result<Checked, CheckError> {
    let tie = |note: Option<&str>, size: u64, root: &Hash| -> Result<bool, CheckError> {
        let (Some(key), Some(note)) = (key, note) else {
            return Ok(false);
        };
        let cp = SignedCheckpoint::open(note, key)
            .map_err(|e| CheckError::Checkpoint(format!("does not verify: {e}")))?
            .checkpoint;
        if cp.size != size || cp.root != *root {
            return Err(CheckError::Checkpoint(format!(
                "is for size {} root {}, the proof for size {size} root {root}",
                cp.size, cp.root
            )));
        }
        Ok(true)
    };
    match doc {
        ProofDoc::Inclusion(p) => {
            if let Some(line) = &p.record
                && leaf_hash(line.as_bytes()) != p.leaf_hash
            {
                return Err(CheckError::Record);
            }
            verify_inclusion(p.seq, p.tree_size, &p.leaf_hash, &p.hashes, &p.root)
                .map_err(|e| CheckError::Proof(e.to_string()))?;
            let signed = tie(checkpoint.or(p.checkpoint.as_deref()), p.tree_size, &p.root)?;
            Ok(Checked {
                summary: format!(
                    "record {} is leaf {} of the tree of {} records with root {}",
                    p.seq, p.leaf_hash, p.tree_size, p.root
                ),
                signed,
            })
        }
        ProofDoc::Consistency(p) => {
            verify_consistency(p.size1, p.size2, &p.hashes, &p.root1, &p.root2)
                .map_err(|e| CheckError::Proof(e.to_string()))?;
            let signed1 = tie(p.checkpoint1.as_deref(), p.size1, &p.root1)?;
            let signed2 = tie(checkpoint.or(p.checkpoint2.as_deref()), p.size2, &p.root2)?;
            Ok(Checked {
                summary: format!(
                    "the tree of {} records (root {}) extends the tree of {} records (root {})",
                    p.size2, p.root2, p.size1, p.root1
                ),
                signed: signed1 || signed2,
            })
        }
    }
}

#[cfg(test)]
mod tests;
