//! A checkpoint (the tree head in the C2SP `tlog-checkpoint` note format),
//! its signed note, and how notes are written to files: what the signer
//! and the sinks share.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::Path,
};

use super::note::{NoteError, NoteSigner, NoteVerifier, split_note};
use crate::audit::hash::Hash;

/// A tree head: what a checkpoint commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (first line).
    pub origin: String,
    /// Number of records (leaves).
    pub size: u64,
    /// RFC 6962 root of the first `size` records.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, each on its line.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        )
    }

    /// Parses a checkpoint's note text (extension lines are ignored).
    pub fn parse_text(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |m: &str| NoteError::Malformed(format!("not a checkpoint: {m}"));
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size = lines.next().ok_or_else(|| bad("no tree size line"))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(bad(
                "the tree size is not a decimal number without leading zeros",
            ));
        }
        let size = size
            .parse()
            .map_err(|_| bad("the tree size is too large"))?;
        let root = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root = Hash::from_base64(root)
            .ok_or_else(|| bad("the root hash is not 32 bytes in base64"))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// A checkpoint and its signed note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What it commits to.
    pub checkpoint: Checkpoint,
    /// The signed note, as written.
    pub note: String,
}

impl SignedCheckpoint {
    /// Signs `checkpoint` with `signer`.
    pub fn sign(
        checkpoint: Checkpoint,
        signer: &NoteSigner,
    ) -> Result<SignedCheckpoint, NoteError> {
        let note = signer.sign(&checkpoint.to_text())?;
        Ok(SignedCheckpoint { checkpoint, note })
    }

    /// Parses a note without checking its signature.
    pub fn parse_unverified(note: &str) -> Result<SignedCheckpoint, NoteError> {
        let (text, _) = split_note(note)?;
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint::parse_text(text)?,
            note: note.to_string(),
        })
    }

    /// Checks the signature of `verifier` and parses the checkpoint.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<SignedCheckpoint, NoteError> {
        let text = verifier.open(note)?;
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint::parse_text(text)?,
            note: note.to_string(),
        })
    }
}

/// Appends a note and a blank line to a notes file, and fsyncs it.
pub fn append_note(path: &Path, note: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    let mut buf = Vec::with_capacity(note.len() + 1);
    buf.extend_from_slice(note.as_bytes());
    buf.push(b'\n');
    f.write_all(&buf)?;
    f.sync_data()
}

/// Writes `path` through a temporary file and a rename, both synced.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
