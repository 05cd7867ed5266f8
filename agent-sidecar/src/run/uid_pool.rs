//! Dynamic agent users: each `run` started as root gives its agent a uid
//! (and the gid of the same number) of its own from a range no account
//! uses, so agents can neither signal, trace nor read the `/proc` files of
//! one another, nor read one another's files.
//!
//! A uid is held by an exclusive `flock` on [`LOCK_DIR`]`/<uid>.lock` for as
//! long as the `run` lives; concurrent `run`s never share one, whatever
//! their `--state-dir` (uids are a resource of the whole host). A uid
//! that the user database names, or that owns a running process, is
//! skipped. The lease is released (lock dropped, file removed) when `run`
//! ends or dies.

use std::{
    fs::{self, File, OpenOptions},
    io,
    ops::RangeInclusive,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    str::FromStr,
};

use nix::fcntl::{Flock, FlockArg};

use super::user::UserSpec;

/// Where the uid locks live: under the default state directory, for every
/// `run` of the host.
pub const LOCK_DIR: &str = "/run/agent-sidecar/uids";

/// The default range: above every range a distribution or systemd assigns
/// (system and regular users, systemd's `DynamicUser=` 61184-65519, container
/// ranges up to 1878982656), below 2^31.
pub const DEFAULT_RANGE: RangeInclusive<u32> = 1_879_048_192..=1_879_113_727;

/// A `--uid-range FIRST-LAST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidRange(pub RangeInclusive<u32>);

impl Default for UidRange {
    fn default() -> Self {
        UidRange(DEFAULT_RANGE)
    }
}

/// Why no agent user could be allocated.
#[derive(Debug, thiserror::Error)]
pub enum UidPoolError {
    /// Not `FIRST-LAST` with `0 < FIRST <= LAST < 2^31 - 1`.
    #[error(
        "invalid --uid-range `{0}`: write FIRST-LAST with 0 < FIRST <= LAST < 2147483647 \
         (e.g. 1879048192-1879113727), a range no account of this host uses"
    )]
    Malformed(String),
    /// Every uid of the range is taken.
    #[error(
        "every uid of --uid-range {first}-{last} is held by a running agent or used by an \
         account or process of this host; widen the range"
    )]
    Exhausted {
        /// First uid of the range.
        first: u32,
        /// Last uid of the range.
        last: u32,
    },
    /// The lock directory or a lock file cannot be used.
    #[error("agent user lock {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl FromStr for UidRange {
    type Err = UidPoolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UidPoolError::Malformed(s.into());
        let (first, last) = s.split_once('-').ok_or_else(bad)?;
        let first: u32 = first.trim().parse().map_err(|_| bad())?;
        let last: u32 = last.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last || last >= i32::MAX as u32 {
            return Err(bad());
        }
        Ok(UidRange(first..=last))
    }
}

/// A uid held for one agent; released when dropped.
#[derive(Debug)]
pub struct UidLease {
    user: UserSpec,
    path: PathBuf,
    lock: Option<Flock<File>>,
}

impl UidLease {
    /// The agent's user.
    pub fn user(&self) -> UserSpec {
        self.user
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        // Remove the file while still holding the lock: an allocator that
        // opened it before sees, once it holds the lock, that its file is
        // no longer the one at the path and tries again.
        let _ = fs::remove_file(&self.path);
        drop(self.lock.take());
    }
}

/// Takes a free uid of `range` for an agent, starting at a random point so
/// that a uid just released is rarely the next one handed out.
pub fn allocate(lock_dir: &Path, range: &UidRange) -> Result<UidLease, UidPoolError> {
    let dir = lock_dir.to_path_buf();
    fs::DirBuilder::new()
        .recursive(true)
        .create(&dir)
        .map_err(|source| UidPoolError::Io {
            path: dir.clone(),
            source,
        })?;
    let (first, last) = (*range.0.start(), *range.0.end());
    let size = u64::from(last - first) + 1;
    let start = rand::random::<u64>() % size;
    let busy = uids_with_processes();
    for i in 0..size {
        let uid = first + ((start + i) % size) as u32;
        if busy.contains(&uid) || named(uid) {
            continue;
        }
        let path = dir.join(format!("{uid}.lock"));
        if let Some(lock) = try_lock(&path)? {
            return Ok(UidLease {
                user: UserSpec { uid, gid: uid },
                path,
                lock: Some(lock),
            });
        }
    }
    Err(UidPoolError::Exhausted { first, last })
}

/// Locks `path` unless another `run` holds it.
fn try_lock(path: &Path) -> Result<Option<Flock<File>>, UidPoolError> {
    let io_err = |source| UidPoolError::Io {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
        Err((_, e)) => return Err(io_err(e.into())),
    };
    // The holder may have removed the file between our open and our lock.
    let held = lock.metadata().map_err(io_err)?;
    match fs::metadata(path) {
        Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => Ok(Some(lock)),
        _ => Ok(None),
    }
}

/// Whether the user or group database names `uid`.
fn named(uid: u32) -> bool {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid));
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(uid));
    !matches!((user, group), (Ok(None), Ok(None)))
}

/// Real uids of every running process.
fn uids_with_processes() -> std::collections::HashSet<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Default::default();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| e.metadata().ok().map(|m| m.uid()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_leases_never_share_a_uid_and_release_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let range: UidRange = "1879048192-1879048194".parse().unwrap();
        let a = allocate(dir.path(), &range).unwrap();
        let b = allocate(dir.path(), &range).unwrap();
        let c = allocate(dir.path(), &range).unwrap();
        let mut uids = vec![a.user().uid, b.user().uid, c.user().uid];
        uids.sort();
        assert_eq!(uids, vec![1879048192, 1879048193, 1879048194]);
        assert_eq!(a.user().gid, a.user().uid);
        assert!(matches!(
            allocate(dir.path(), &range),
            Err(UidPoolError::Exhausted { .. })
        ));
        let freed = b.user().uid;
        drop(b);
        assert_eq!(allocate(dir.path(), &range).unwrap().user().uid, freed);
    }

    #[test]
    fn ranges_are_checked() {
        assert_eq!("10-20".parse::<UidRange>().unwrap(), UidRange(10..=20));
        for bad in ["", "0-10", "20-10", "10", "1-2147483647", "a-b"] {
            let err = bad.parse::<UidRange>().unwrap_err();
            assert!(err.to_string().contains("FIRST-LAST"), "{bad}: {err}");
        }
    }
}
