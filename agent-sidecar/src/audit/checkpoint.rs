//! Checkpoints: the tree head (origin, size, root) in the C2SP
//! `tlog-checkpoint` format (<https://c2sp.org/tlog-checkpoint>), signed
//! as a C2SP signed note with Ed25519:
//!
//! ```text
//! example.com/audit/agent-1
//! 1234
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//!
//! — example.com/audit/agent-1 Az3grlgt...
//! ```
//!
//! The log signs one at an interval and at close, never two that are
//! inconsistent: before signing it proves, from its stored tree, that the
//! new tree extends the last one it signed, and refuses otherwise
//! ([`Checkpointer`]). Each checkpoint is appended to the log's
//! `checkpoints` file (notes separated by a blank line), copied to
//! `checkpoint` (the latest), and handed to every [`CheckpointSink`] (a
//! witness file outside the log directory; a webhook).

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use thiserror::Error;

use super::{
    hash::Hash,
    tree::{NodeSource, consistency_proof, verify_consistency},
};

mod note;
mod signed;
mod sink;

pub use note::{NoteError, NoteSignatures, NoteSigner, NoteVerifier, split_note, valid_key_name};
pub use signed::{Checkpoint, SignedCheckpoint, append_note, write_atomic};
pub use sink::{CheckpointSink, FileSink, SLOW_SINK, SinkError};

/// File of every checkpoint signed, in the log directory.
pub const HISTORY_FILE: &str = "checkpoints";
/// File holding the latest checkpoint, in the log directory.
pub const LATEST_FILE: &str = "checkpoint";

/// Splits a file of notes separated by blank lines (the `checkpoints`
/// file, a witness file) into notes, with the line each starts on.
pub fn split_notes(content: &str) -> Vec<(usize, String)> {
    let mut notes = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    let mut in_sigs = false;
    for (i, line) in content.split_inclusive('\n').enumerate() {
        let blank = line == "\n";
        if current.is_empty() {
            if blank {
                continue;
            }
            start = i + 1;
        }
        if blank {
            if in_sigs {
                notes.push((start, std::mem::take(&mut current)));
                in_sigs = false;
                continue;
            }
            in_sigs = true;
        }
        current.push_str(line);
    }
    if !current.trim().is_empty() {
        notes.push((start, current));
    }
    notes
}

/// Why a checkpoint was not signed or written.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The tree does not extend the last signed checkpoint.
    #[error(
        "refusing to sign size {size}: the tree is not an extension of the last signed checkpoint (size {last_size}): {reason}; the log's tree or records changed since; run `agent-sidecar audit verify {dir}`"
    )]
    Inconsistent {
        /// The log directory.
        dir: PathBuf,
        /// Size asked for.
        size: u64,
        /// Last signed size.
        last_size: u64,
        /// Why.
        reason: String,
    },
    /// Signing failed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// Writing a checkpoint file failed.
    #[error("writing checkpoint file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The last signed checkpoint could not be read.
    #[error(
        "reading the last signed checkpoint from {path}: {reason}; fix or restore the file (the records are not affected)"
    )]
    Last {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Signs checkpoints of one log, never two inconsistent ones.
pub struct Checkpointer {
    dir: PathBuf,
    origin: String,
    signer: NoteSigner,
    last: Option<Checkpoint>,
    sinks: Vec<Box<dyn CheckpointSink>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("origin", &self.origin)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Loads the last checkpoint signed in `dir` (the last note of its
    /// `checkpoints` file, checked with `signer`'s key).
    pub fn open(
        dir: &Path,
        origin: String,
        signer: NoteSigner,
        sinks: Vec<Box<dyn CheckpointSink>>,
    ) -> Result<Checkpointer, CheckpointError> {
        let path = dir.join(HISTORY_FILE);
        let last = match read_tail(&path, 64 * 1024) {
            Ok(tail) => match split_notes(&tail).pop() {
                Some((_, note)) => {
                    let opened =
                        SignedCheckpoint::open(&note, &signer.verifier()).map_err(|e| {
                            CheckpointError::Last {
                                path: path.clone(),
                                reason: format!(
                                    "{e} (is the signing key the one this log was signed with?)"
                                ),
                            }
                        })?;
                    Some(opened.checkpoint)
                }
                None => None,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(CheckpointError::Last {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        Ok(Checkpointer {
            dir: dir.to_path_buf(),
            origin,
            signer,
            last,
            sinks,
        })
    }

    /// The last checkpoint signed.
    pub fn last(&self) -> Option<&Checkpoint> {
        self.last.as_ref()
    }

    /// The verifier of the signing key.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// Whether a checkpoint of `size` would be new (an empty tree is not
    /// worth one).
    pub fn is_new(&self, size: u64) -> bool {
        size > 0 && self.last.as_ref().is_none_or(|c| c.size < size)
    }

    /// Signs the tree of `size` leaves with root `root`, after proving from
    /// `tree` that it extends the last signed checkpoint; writes it and
    /// hands it to the sinks. Sink failures are returned, not fatal.
    pub fn sign<S: NodeSource>(
        &mut self,
        tree: &S,
        size: u64,
        root: Hash,
    ) -> Result<(SignedCheckpoint, Vec<SinkError>), CheckpointError>
    where
        S::Error: std::fmt::Display,
    {
        if let Some(last) = &self.last {
            let inconsistent = |reason: String| CheckpointError::Inconsistent {
                dir: self.dir.clone(),
                size,
                last_size: last.size,
                reason,
            };
            if size < last.size {
                return Err(inconsistent("the tree is smaller".into()));
            }
            let proof = consistency_proof(tree, last.size, size)
                .map_err(|e| inconsistent(e.to_string()))?;
            verify_consistency(last.size, size, &proof, &last.root, &root)
                .map_err(|e| inconsistent(e.to_string()))?;
        }
        let signed = SignedCheckpoint::sign(
            Checkpoint {
                origin: self.origin.clone(),
                size,
                root,
            },
            &self.signer,
        )?;
        let history = self.dir.join(HISTORY_FILE);
        append_note(&history, &signed.note).map_err(|source| CheckpointError::Io {
            path: history,
            source,
        })?;
        let latest = self.dir.join(LATEST_FILE);
        write_atomic(&latest, signed.note.as_bytes()).map_err(|source| CheckpointError::Io {
            path: latest,
            source,
        })?;
        self.last = Some(signed.checkpoint.clone());
        let mut failures = Vec::new();
        for sink in &mut self.sinks {
            if let Err(e) = sink.publish(&signed) {
                failures.push(e);
            }
        }
        Ok((signed, failures))
    }
}

/// The last `max` bytes of a file (from a line start when cut).
fn read_tail(path: &Path, max: u64) -> io::Result<String> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let mut s = String::from_utf8_lossy(&buf).into_owned();
    if start > 0 {
        // Start at a note boundary (a blank line).
        if let Some(i) = s.find("\n\n") {
            s.drain(..i + 2);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests;
