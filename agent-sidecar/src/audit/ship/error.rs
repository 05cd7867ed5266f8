//! Why shipping could not start or go on.

use std::{io, path::PathBuf};

use thiserror::Error;

/// An error of the shipper: bad configuration (at start), or a store or
/// cursor problem that stops one destination until it is resolved.
#[derive(Debug, Error)]
pub enum ShipError {
    /// A destination is misconfigured.
    #[error("{what}: {reason}; {fix}")]
    Config {
        /// Which destination or file.
        what: String,
        /// What is wrong.
        reason: String,
        /// How to fix it.
        fix: String,
    },
    /// The cursor of a destination cannot be read or written.
    #[error("the ship cursor {path} cannot be used: {source}; {fix}")]
    Cursor {
        /// The cursor file.
        path: PathBuf,
        /// The error.
        source: io::Error,
        /// How to fix it.
        fix: &'static str,
    },
    /// Another process ships to this destination from the same log.
    #[error(
        "another process is shipping {dir} to destination {name:?} (it holds {lock}); stop it or give this destination another name"
    )]
    Busy {
        /// The log directory.
        dir: PathBuf,
        /// The destination.
        name: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// The store cannot be read.
    #[error("reading the audit log {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The store holds something that is not a record where one should be,
    /// or records are missing from a sealed segment.
    #[error(
        "{path} offset {offset}: {reason}; shipping stops here: run `agent-sidecar audit verify` on the log"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What.
        reason: String,
    },
}
