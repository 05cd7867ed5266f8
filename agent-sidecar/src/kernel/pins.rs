//! Where an agent's enforcement state lives.
//!
//! - bpffs: `<bpffs>/agent-sidecar/<agent id>/gen-<n>/` holds the maps (pinned
//!   by name) and one `link-<program>` per attached program. A pinned link
//!   keeps its program attached after the sidecar exits: enforcement fails
//!   closed. A new generation is attached before the previous one is removed,
//!   so replacing state never opens a gap.
//! - state dir (default `/run/agent-sidecar`): `<agent id>.json` records the
//!   generation, cgroup and object digest; `<agent id>.lock` is held (flock)
//!   by the live sidecar that owns the agent.

use std::{
    fs::{self, File, OpenOptions},
    os::{fd::AsRawFd, unix::fs::DirBuilderExt},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::KernelError;

/// Default directory for state files and owner locks.
pub const DEFAULT_STATE_DIR: &str = "/run/agent-sidecar";

/// Paths of one agent's pinned state.
#[derive(Clone, Debug)]
pub struct PinLayout {
    /// bpffs mount point.
    pub bpffs: PathBuf,
    /// Directory of state files and locks.
    pub state_dir: PathBuf,
    /// The agent id (validated).
    pub agent_id: String,
}

impl PinLayout {
    /// Builds the layout, validating the agent id.
    pub fn new(bpffs: &Path, state_dir: &Path, agent_id: &str) -> Result<Self, KernelError> {
        validate_agent_id(agent_id)?;
        Ok(Self {
            bpffs: bpffs.into(),
            state_dir: state_dir.into(),
            agent_id: agent_id.into(),
        })
    }

    /// `<bpffs>/agent-sidecar/<agent id>`.
    pub fn agent_dir(&self) -> PathBuf {
        self.bpffs.join("agent-sidecar").join(&self.agent_id)
    }

    /// The directory of generation `generation`.
    pub fn generation_dir(&self, generation: u64) -> PathBuf {
        self.agent_dir().join(format!("gen-{generation}"))
    }

    /// Pin path of a program's link.
    pub fn link_path(&self, generation: u64, program: &str) -> PathBuf {
        self.generation_dir(generation)
            .join(format!("link-{program}"))
    }

    /// Pin path of a map.
    pub fn map_path(&self, generation: u64, map: &str) -> PathBuf {
        self.generation_dir(generation).join(map)
    }

    /// `<state dir>/<agent id>.json`.
    pub fn state_path(&self) -> PathBuf {
        self.state_dir.join(format!("{}.json", self.agent_id))
    }

    /// `<state dir>/<agent id>.lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.state_dir.join(format!("{}.lock", self.agent_id))
    }

    /// Generations present under bpffs, oldest first.
    pub fn generations(&self) -> Vec<u64> {
        let mut gens: Vec<u64> = fs::read_dir(self.agent_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("gen-")?.parse().ok())
            .collect();
        gens.sort_unstable();
        gens
    }

    /// Creates a directory (and parents) with mode 0700.
    pub fn create_private_dir(path: &Path) -> Result<(), KernelError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| KernelError::io("creating", path, e))
    }

    /// Removes a generation directory and everything pinned in it. Removing
    /// a link's pin detaches its program once no process holds the link.
    pub fn remove_generation(&self, generation: u64) -> Result<(), KernelError> {
        let dir = self.generation_dir(generation);
        if let Ok(entries) = fs::read_dir(&dir) {
            // Links first, so programs stop running before their maps go.
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort_by_key(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("link-"))
            });
            for p in paths {
                fs::remove_file(&p).map_err(|e| KernelError::io("unpinning", &p, e))?;
            }
            fs::remove_dir(&dir).map_err(|e| KernelError::io("removing", &dir, e))?;
        }
        Ok(())
    }
}

/// Rejects agent ids that are not safe as a single path component.
pub fn validate_agent_id(id: &str) -> Result<(), KernelError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KernelError::InvalidAgentId(id.to_string()))
    }
}

/// What a sidecar records about the state it pinned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedState {
    /// The agent id.
    pub agent_id: String,
    /// Current generation under bpffs.
    pub generation: u64,
    /// The agent's cgroup directory.
    pub cgroup: PathBuf,
    /// SHA-256 of the eBPF object attached.
    pub object_sha256: String,
    /// Pid of the sidecar that pinned it.
    pub owner_pid: u32,
}

impl PinnedState {
    /// Reads the state file, if any.
    pub fn read(layout: &PinLayout) -> Result<Option<Self>, KernelError> {
        let path = layout.state_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                KernelError::io(
                    "parsing",
                    &path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KernelError::io("reading", &path, e)),
        }
    }

    /// Writes the state file atomically (write to a temporary file, rename).
    pub fn write(&self, layout: &PinLayout) -> Result<(), KernelError> {
        let path = layout.state_path();
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).expect("state serialises");
        fs::write(&tmp, bytes).map_err(|e| KernelError::io("writing", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| KernelError::io("writing", &path, e))
    }
}

/// The exclusive owner lock of an agent id, held for the sidecar's lifetime
/// and released by the kernel when the process dies, however it dies.
#[derive(Debug)]
pub struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    /// Takes the lock, or reports who holds it.
    pub fn acquire(layout: &PinLayout) -> Result<Self, KernelError> {
        PinLayout::create_private_dir(&layout.state_dir)?;
        let path = layout.lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| KernelError::io("opening", &path, e))?;
        // SAFETY: flock on an fd we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let pid = PinnedState::read(layout)
                    .ok()
                    .flatten()
                    .map(|s| s.owner_pid.to_string())
                    .unwrap_or_else(|| "unknown".into());
                return Err(KernelError::InUse {
                    agent_id: layout.agent_id.clone(),
                    pid,
                });
            }
            return Err(KernelError::io("locking", &path, err));
        }
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_are_single_safe_path_components() {
        for ok in ["a", "procurement-agent", "agent_7.prod", &"x".repeat(64)] {
            validate_agent_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "-x", "a/b", "a b", "é", &"x".repeat(65)] {
            let e = validate_agent_id(bad).unwrap_err().to_string();
            assert!(e.contains("[A-Za-z0-9._-]"), "{bad}: {e}");
        }
    }

    #[test]
    fn layout_paths() {
        let l = PinLayout::new(Path::new("/sys/fs/bpf"), Path::new("/run/x"), "a1").unwrap();
        assert_eq!(
            l.link_path(3, "connect4"),
            Path::new("/sys/fs/bpf/agent-sidecar/a1/gen-3/link-connect4")
        );
        assert_eq!(l.state_path(), Path::new("/run/x/a1.json"));
    }
}
