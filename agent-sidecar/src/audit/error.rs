//! Why the audit log refused something: what, where, and how to fix it.

use std::{io, path::PathBuf};

use thiserror::Error;

/// An audit log operation that failed. An `append` error means the
/// action's evidence cannot be kept: the caller refuses the action (fails
/// closed).
#[derive(Debug, Error, Clone)]
pub enum AuditError {
    /// The log cannot write (disk full, permissions, read-only file
    /// system): appends are refused until a retry succeeds.
    #[error("the audit log cannot write {path}: {reason}; actions are refused until it can: {fix}")]
    Unwritable {
        /// The file that could not be written.
        path: PathBuf,
        /// The operating system's error.
        reason: String,
        /// Its kind (`StorageFull` for a full disk).
        kind: io::ErrorKind,
        /// How to fix it.
        fix: String,
    },
    /// An fsync failed: what the kernel held may be lost, so the log stops
    /// taking records until it is reopened (which re-reads the tail).
    #[error(
        "the audit log could not fsync {path}: {reason}; records since the last good fsync may be lost, so the log refuses further records: restart the sidecar (the log repairs its tail on open) after checking the disk"
    )]
    Poisoned {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        reason: String,
    },
    /// Too many records wait to be written: the disk is stalled.
    #[error(
        "the audit log {dir} has {queued} records waiting to be written (limit {limit}); actions are refused until the disk catches up"
    )]
    Backlog {
        /// The log directory.
        dir: PathBuf,
        /// Records waiting.
        queued: u64,
        /// The limit.
        limit: u64,
    },
    /// The log was closed.
    #[error("the audit log {dir} is closed")]
    Closed {
        /// The log directory.
        dir: PathBuf,
    },
    /// A producer named a retention class the log does not know.
    #[error(
        "unknown retention class `{class}` (configured: {known}); configure it or use one of those"
    )]
    UnknownRetentionClass {
        /// The class asked for.
        class: String,
        /// The classes configured.
        known: String,
    },
    /// The log could not be opened.
    #[error("opening the audit log {path}: {reason}; {fix}")]
    Open {
        /// Where.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// How to fix it.
        fix: String,
    },
    /// Another process holds the log.
    #[error(
        "the audit log {dir} is in use by another process (it holds {lock}); stop it or give this sidecar another log directory"
    )]
    Locked {
        /// The log directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
}

impl AuditError {
    /// The error for an I/O failure writing `path` in the log `dir`.
    pub fn unwritable(path: PathBuf, dir: &std::path::Path, e: &io::Error) -> AuditError {
        let fix = match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => format!(
                "free space on the file system holding {} (or move the log to a larger one)",
                dir.display()
            ),
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => format!(
                "make {} writable by the sidecar's user (and the file system read-write)",
                dir.display()
            ),
            _ => format!("check the file system holding {}", dir.display()),
        };
        AuditError::Unwritable {
            path,
            reason: e.to_string(),
            kind: e.kind(),
            fix,
        }
    }

    /// An open error for `path`.
    pub fn open(path: impl Into<PathBuf>, reason: impl ToString, fix: impl ToString) -> AuditError {
        AuditError::Open {
            path: path.into(),
            reason: reason.to_string(),
            fix: fix.to_string(),
        }
    }
}
