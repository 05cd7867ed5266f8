//! Host unix socket files the agent's uid could connect to only because
//! their mode lets "others" write (a root daemon's `0666` socket, say).
//! The agent gets a mount namespace of its own (a slave of the host's, so
//! later host mounts still appear) in which each of them is covered by a
//! bind mount of `/dev/null`: connecting to the path then fails with
//! `ECONNREFUSED`. Sockets the agent creates later, and abstract sockets
//! (decided by the Landlock scope), are not concerned. The sockets are those
//! bound in the sidecar's network namespace and those found below
//! [`SEARCHED`] when the agent starts.

use std::{
    os::unix::fs::{FileTypeExt, MetadataExt},
    path::{Path, PathBuf},
};

/// Directories searched for socket files besides the ones bound in the
/// sidecar's network namespace (daemons of other namespaces put theirs
/// there too).
pub const SEARCHED: &[&str] = &["/run", "/tmp", "/var/tmp", "/dev/shm"];

/// Depth of the search below each of [`SEARCHED`].
const MAX_DEPTH: usize = 4;

/// Entries read at most during the search.
const MAX_ENTRIES: usize = 20_000;

/// Socket files `uid` could connect to without owning them (writable by
/// others, owned by someone else): those bound in the sidecar's network
/// namespace (`/proc/net/unix`) and those found in [`SEARCHED`].
pub fn foreign_writable_sockets(uid: u32) -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = table
        .lines()
        .skip(1)
        .filter_map(path_field)
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    let mut budget = MAX_ENTRIES;
    for dir in SEARCHED {
        find_sockets(Path::new(dir), MAX_DEPTH, &mut budget, &mut candidates);
    }
    let mut paths: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|p| {
            std::fs::symlink_metadata(p)
                .is_ok_and(|m| m.file_type().is_socket() && m.mode() & 0o002 != 0 && m.uid() != uid)
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// [`foreign_writable_sockets`] on a thread of its own, started before the
/// kernel programs load so that the search of the directories overlaps
/// with it instead of adding to the agent's start.
pub(crate) struct Scan(ScanState);

enum ScanState {
    Running(std::thread::JoinHandle<Vec<PathBuf>>),
    /// No thread could be started: the search runs when the result is
    /// asked for.
    Later(u32),
}

impl Scan {
    /// Starts the search for `uid`.
    pub(crate) fn start(uid: u32) -> Self {
        let thread = std::thread::Builder::new()
            .name("socket-scan".into())
            .spawn(move || foreign_writable_sockets(uid));
        Scan(match thread {
            Ok(handle) => ScanState::Running(handle),
            Err(_) => ScanState::Later(uid),
        })
    }

    /// The sockets found.
    pub(crate) fn finish(self) -> Vec<PathBuf> {
        match self.0 {
            ScanState::Running(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            ScanState::Later(uid) => foreign_writable_sockets(uid),
        }
    }
}

/// Collects socket files below `dir` (symbolic links are not followed).
fn find_sockets(dir: &Path, depth: usize, budget: &mut usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_socket() {
            out.push(entry.path());
        } else if kind.is_dir() && depth > 0 {
            find_sockets(&entry.path(), depth - 1, budget, out);
        }
    }
}

/// The `Path` column of a `/proc/net/unix` line (the rest of the line after
/// seven fields; it may hold spaces).
fn path_field(line: &str) -> Option<&str> {
    let mut rest = line;
    for _ in 0..7 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        rest = &rest[end..];
    }
    let path = rest.trim();
    (!path.is_empty()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_path_column_with_spaces() {
        let line = "00000000a52d55b8: 00000003 00000000 00010000 0001 01 154416 /run/my app.sock";
        assert_eq!(path_field(line), Some("/run/my app.sock"));
        let unbound = "000000009cf32393: 00000003 00000000 00000000 0001 03   111";
        assert_eq!(path_field(unbound), None);
    }
}
