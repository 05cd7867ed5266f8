//! Where checkpoints go besides the log directory: witnesses that keep
//! them out of reach of whoever can rewrite the log.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use thiserror::Error;

use super::signed::{SignedCheckpoint, append_note};

/// A checkpoint could not be handed to a sink.
#[derive(Debug, Error)]
#[error("checkpoint sink {sink}: {reason}")]
pub struct SinkError {
    /// Which sink.
    pub sink: String,
    /// What went wrong and how to fix it.
    pub reason: String,
}

/// Receives every checkpoint the log signs, in order.
///
/// `publish` runs on the log's writer thread between two batches of
/// records: it must return quickly (a network sink queues and sends from
/// its own task). A failure is logged and counted; it never stops the log.
pub trait CheckpointSink: Send {
    /// A name for logs and errors.
    fn name(&self) -> String;
    /// Takes one checkpoint.
    fn publish(&mut self, checkpoint: &SignedCheckpoint) -> Result<(), SinkError>;
}

/// Appends each checkpoint (then a blank line) to a file, fsynced: put it
/// outside the log directory, ideally on another host's mount, so that a
/// rewritten log no longer matches what was witnessed.
/// `agent-sidecar audit verify --witness FILE` checks the log against it.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
}

impl FileSink {
    /// A sink appending to `path` (created when missing).
    pub fn new(path: impl Into<PathBuf>) -> FileSink {
        FileSink { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl CheckpointSink for FileSink {
    fn name(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn publish(&mut self, checkpoint: &SignedCheckpoint) -> Result<(), SinkError> {
        append_note(&self.path, &checkpoint.note).map_err(|e| SinkError {
            sink: self.name(),
            reason: format!("{e}; check that the directory exists and is writable by the sidecar"),
        })
    }
}

/// How long a sink may take before the log warns about it.
pub const SLOW_SINK: Duration = Duration::from_millis(50);
