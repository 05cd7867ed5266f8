//! The append-only JSON-lines journal behind the approval store.
//!
//! Each line is the full [`PendingApproval`] after a state change; on replay
//! the last line for an id wins. Every append is followed by
//! [`File::sync_data`] before the change is acknowledged. A last line without
//! its newline is the trace of a crash mid-write: it was never acknowledged,
//! so replay reports it and cuts it off. Any other unreadable line is an
//! error naming the file and the line, and nothing is dropped.

use std::{
    fs::{self, File, OpenOptions},
    io::{BufWriter, Read, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use super::{error::JournalError, model::PendingApproval};

/// The journal's file name inside the store directory.
pub const FILE_NAME: &str = "approvals.jsonl";
const COMPACT_NAME: &str = "approvals.jsonl.compact";

/// A crash left a partial last line; it was cut off on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The 1-based line number of the partial line.
    pub line: usize,
    /// How many bytes were cut off.
    pub bytes: u64,
}

/// What replaying the journal found.
#[derive(Debug)]
pub struct Replay {
    /// The records, in journal order (several per id).
    pub records: Vec<PendingApproval>,
    /// The partial last line, if a crash left one.
    pub torn_tail: Option<TornTail>,
}

/// An open journal file, positioned for appends.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    dir: PathBuf,
    file: File,
    len: u64,
    broken: bool,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> JournalError {
    let path = path.to_path_buf();
    move |source| JournalError::Io { op, path, source }
}

impl Journal {
    /// Opens (creating with mode 0700/0600 if needed) the journal in `dir`
    /// and replays it.
    pub fn open(dir: &Path) -> Result<(Journal, Replay), JournalError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create directory", dir))?;
        let path = dir.join(FILE_NAME);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open", &path))?;
        if !existed {
            sync_dir(dir)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        let (records, good_len, torn_tail) = parse(&path, &bytes)?;
        if torn_tail.is_some() {
            file.set_len(good_len).map_err(io_err("truncate", &path))?;
            file.sync_data().map_err(io_err("sync", &path))?;
        }
        let journal = Journal {
            path,
            dir: dir.to_path_buf(),
            file,
            len: good_len,
            broken: false,
        };
        Ok((journal, Replay { records, torn_tail }))
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if the journal holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one record and waits until it is on disk. If the write fails
    /// the partial line is cut off; if even that fails the journal refuses
    /// every later append (fail closed) until the sidecar reopens it.
    pub fn append(&mut self, record: &PendingApproval) -> Result<(), JournalError> {
        if self.broken {
            return Err(JournalError::Broken {
                path: self.path.clone(),
            });
        }
        let mut line = serde_json::to_vec(record).map_err(JournalError::Encode)?;
        line.push(b'\n');
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            if self.file.set_len(self.len).is_err() {
                self.broken = true;
            }
            return Err(JournalError::Io {
                op: "append to",
                path: self.path.clone(),
                source,
            });
        }
        self.len += line.len() as u64;
        Ok(())
    }

    /// Replaces the journal with `live`, one line each: writes a temporary
    /// file, syncs it, renames it over the journal and syncs the directory,
    /// so a crash leaves either the old or the new journal.
    pub fn compact<'a>(
        &mut self,
        live: impl IntoIterator<Item = &'a PendingApproval>,
    ) -> Result<(), JournalError> {
        let tmp = self.dir.join(COMPACT_NAME);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        let mut out = BufWriter::new(file);
        for record in live {
            serde_json::to_writer(&mut out, record).map_err(JournalError::Encode)?;
            out.write_all(b"\n").map_err(io_err("write", &tmp))?;
        }
        let file = out
            .into_inner()
            .map_err(|e| io_err("write", &tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err("sync", &tmp))?;
        let len = file.metadata().map_err(io_err("stat", &tmp))?.len();
        fs::rename(&tmp, &self.path).map_err(io_err("rename", &tmp))?;
        // From here on the old handle points at the replaced file: appending
        // to it would be lost, so any failure makes the journal refuse writes.
        self.broken = true;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_err("reopen", &self.path))?;
        self.len = len;
        self.broken = false;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// Splits `bytes` into records; returns them, the length of the complete
/// lines, and the torn tail if the last line has no newline.
fn parse(
    path: &Path,
    bytes: &[u8],
) -> Result<(Vec<PendingApproval>, u64, Option<TornTail>), JournalError> {
    let mut records = Vec::new();
    let mut rest = bytes;
    let mut good_len = 0u64;
    let mut line_no = 0usize;
    while !rest.is_empty() {
        line_no += 1;
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            let torn = TornTail {
                line: line_no,
                bytes: rest.len() as u64,
            };
            return Ok((records, good_len, Some(torn)));
        };
        let line = &rest[..end];
        if !line.iter().all(u8::is_ascii_whitespace) {
            let record = serde_json::from_slice(line).map_err(|source| JournalError::Corrupt {
                path: path.to_path_buf(),
                line: line_no,
                source,
            })?;
            records.push(record);
        }
        good_len += end as u64 + 1;
        rest = &rest[end + 1..];
    }
    Ok((records, good_len, None))
}

#[cfg(test)]
mod tests;
