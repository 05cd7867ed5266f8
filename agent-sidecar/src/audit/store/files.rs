//! The log directory's fixed names, its lock and directory creation.

use std::{
    fs::{self, File},
    path::Path,
};

use crate::audit::error::AuditError;

/// Name of the lock file in the log directory.
pub const LOCK_FILE: &str = "lock";
/// Name of the verifier key file in the log directory.
pub const VKEY_FILE: &str = "log.vkey";
/// Sub-directory of the tree files.
pub const TREE_DIR: &str = "tree";

/// Takes the log's lock file (exclusive, non-blocking).
pub(crate) fn lock(dir: &Path) -> Result<nix::fcntl::Flock<File>, AuditError> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| AuditError::unwritable(path.clone(), dir, &e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        AuditError::Locked {
            dir: dir.to_path_buf(),
            lock: path,
        }
    })
}

/// Creates a directory (and parents), as an open error.
pub(crate) fn create_dir(path: &Path, dir: &Path) -> Result<(), AuditError> {
    fs::create_dir_all(path).map_err(|e| AuditError::unwritable(path.to_path_buf(), dir, &e))
}
