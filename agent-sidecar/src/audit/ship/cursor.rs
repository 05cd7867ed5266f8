//! The durable cursor of one destination: `DIR/ship/<name>.cursor`, the
//! sequence number of the first record not yet acknowledged by the
//! collector (and the id of the last one that was), replaced atomically
//! (write, fsync, rename, fsync the directory) after every delivered
//! batch. `DIR/ship/<name>.lock` is held while a shipper uses it.

use std::{
    fs::{self, File},
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::error::ShipError;
use crate::audit::time::Timestamp;

/// Sub-directory of the log directory holding the cursors.
pub const SHIP_DIR: &str = "ship";

/// What the cursor file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorState {
    /// First record not yet acknowledged.
    pub next_seq: u64,
    /// Id of record `next_seq - 1` (the last acknowledged), to notice a
    /// log that was replaced under the cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<String>,
    /// When it was acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<Timestamp>,
}

/// An open cursor (its lock held).
pub struct Cursor {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    state: CursorState,
    _lock: nix::fcntl::Flock<File>,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("path", &self.path)
            .field("state", &self.state)
            .finish()
    }
}

impl Cursor {
    /// Opens (or starts at record 0) the cursor of destination `name` in
    /// the log directory `log_dir`.
    pub fn open(log_dir: &Path, name: &str) -> Result<Cursor, ShipError> {
        let dir = log_dir.join(SHIP_DIR);
        let path = dir.join(format!("{name}.cursor"));
        let err = |source: io::Error, fix: &'static str| ShipError::Cursor {
            path: path.clone(),
            source,
            fix,
        };
        fs::create_dir_all(&dir).map_err(|e| {
            err(
                e,
                "the shipper needs to write the ship/ directory of the audit log",
            )
        })?;
        let lock_path = dir.join(format!("{name}.lock"));
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                err(
                    e,
                    "the shipper needs to write the ship/ directory of the audit log",
                )
            })?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| ShipError::Busy {
                dir: log_dir.to_path_buf(),
                name: name.to_string(),
                lock: lock_path.clone(),
            })?;
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                err(
                    io::Error::new(io::ErrorKind::InvalidData, e),
                    "the file is damaged: restore it, or delete it to ship every record again (collectors de-duplicate by record id)",
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => CursorState::default(),
            Err(e) => return Err(err(e, "make the file readable by the sidecar")),
        };
        Ok(Cursor {
            tmp: dir.join(format!("{name}.cursor.tmp")),
            path,
            dir,
            state,
            _lock: lock,
        })
    }

    /// The state as last stored.
    pub fn state(&self) -> &CursorState {
        &self.state
    }

    /// The first record not yet acknowledged.
    pub fn next_seq(&self) -> u64 {
        self.state.next_seq
    }

    /// Stores that every record before `next_seq` is acknowledged (the
    /// last one being `last_id`); durable when it returns.
    pub fn advance(&mut self, next_seq: u64, last_id: Option<String>) -> Result<(), ShipError> {
        let state = CursorState {
            next_seq,
            last_id,
            acked_at: Some(Timestamp::now()),
        };
        let bytes = serde_json::to_vec(&state).expect("a cursor always serializes");
        let err = |source: io::Error| ShipError::Cursor {
            path: self.path.clone(),
            source,
            fix: "free space on, or make writable, the file system of the audit log",
        };
        let mut f = File::create(&self.tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        fs::rename(&self.tmp, &self.path).map_err(err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        self.state = state;
        Ok(())
    }
}
