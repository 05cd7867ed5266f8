//! The agent's cgroup v2: created per agent id under
//! `<cgroup2 mount>/agent-sidecar/`, owned by root so the agent can neither
//! leave it nor change it.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, MetadataExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::KernelError;

/// Name of the parent cgroup of every governed agent.
pub const PARENT: &str = "agent-sidecar";

/// One agent's cgroup.
#[derive(Debug)]
pub struct AgentCgroup {
    path: PathBuf,
    dir: File,
}

impl AgentCgroup {
    /// Creates (or opens, if it exists) `<root>/agent-sidecar/<agent_id>`;
    /// also says whether this call created it. An existing cgroup that
    /// holds no process (left by a sidecar that is gone) is removed and
    /// made anew: the kernel kills every process born into a cgroup that
    /// was ever emptied through `cgroup.kill` (by a supervisor, by
    /// `teardown`), so reusing it would kill the agent at its first
    /// instruction. One that still holds processes is adopted as it is.
    pub fn create_or_open(
        cgroup2_root: &Path,
        agent_id: &str,
    ) -> Result<(Self, bool), KernelError> {
        let parent = cgroup2_root.join(PARENT);
        let path = parent.join(agent_id);
        let mut builder = fs::DirBuilder::new();
        builder.mode(0o755);
        builder
            .recursive(true)
            .create(&parent)
            .map_err(|e| KernelError::io("creating cgroup", &parent, e))?;
        let created = match builder.recursive(false).create(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::renew_if_empty(&path, &builder)?
            }
            Err(e) => return Err(KernelError::io("creating cgroup", &path, e)),
        };
        Ok((Self::open(path)?, created))
    }

    /// Replaces the existing cgroup at `path` by a new one when it holds no
    /// process; whether it did. A cgroup the kernel will not remove (busy)
    /// is kept.
    fn renew_if_empty(path: &Path, builder: &fs::DirBuilder) -> Result<bool, KernelError> {
        let procs = path.join("cgroup.procs");
        let text = fs::read_to_string(&procs).map_err(|e| KernelError::io("reading", &procs, e))?;
        if !text.trim().is_empty() || fs::remove_dir(path).is_err() {
            return Ok(false);
        }
        builder
            .create(path)
            .map_err(|e| KernelError::io("creating cgroup", path, e))?;
        Ok(true)
    }

    /// Opens an existing cgroup directory.
    pub fn open(path: PathBuf) -> Result<Self, KernelError> {
        let dir = File::open(&path).map_err(|e| KernelError::io("opening cgroup", &path, e))?;
        Ok(Self { path, dir })
    }

    /// The cgroup directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory, as the fd programs are attached to.
    pub fn dir(&self) -> &File {
        &self.dir
    }

    /// The cgroup v2 id (the directory's inode number), as reported by
    /// `bpf_get_current_cgroup_id()`.
    pub fn id(&self) -> Result<u64, KernelError> {
        self.dir
            .metadata()
            .map(|m| m.ino())
            .map_err(|e| KernelError::io("reading", &self.path, e))
    }

    /// Opens `cgroup.procs` for writing; a child writes `0` to it before it
    /// executes the agent's command.
    pub fn procs_writer(&self) -> Result<File, KernelError> {
        let p = self.path.join("cgroup.procs");
        OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(|e| KernelError::io("opening", &p, e))
    }

    /// Process ids currently in the cgroup.
    pub fn pids(&self) -> Result<Vec<u32>, KernelError> {
        let p = self.path.join("cgroup.procs");
        let text = fs::read_to_string(&p).map_err(|e| KernelError::io("reading", &p, e))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Moves process `pid` into the cgroup.
    pub fn add_pid(&self, pid: u32) -> Result<(), KernelError> {
        let mut f = self.procs_writer()?;
        f.write_all(format!("{pid}\n").as_bytes())
            .map_err(|e| KernelError::io("moving a process into", &self.path, e))
    }

    /// Kills every process in the cgroup (`cgroup.kill`, or SIGKILL one by
    /// one on kernels before 5.14) and waits until it is empty.
    pub fn kill_all(&self, timeout: Duration) -> Result<(), KernelError> {
        let kill = self.path.join("cgroup.kill");
        let used_kill_file = fs::write(&kill, "1").is_ok();
        let deadline = Instant::now() + timeout;
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if !used_kill_file {
                for pid in pids {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if Instant::now() > deadline {
                return Err(KernelError::io(
                    "emptying cgroup",
                    &self.path,
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "processes survived SIGKILL"),
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Removes the (empty) cgroup directory, and its parent if that is empty too.
    pub fn remove(self) -> Result<(), KernelError> {
        let Self { path, dir } = self;
        drop(dir);
        fs::remove_dir(&path).map_err(|e| KernelError::io("removing cgroup", &path, e))?;
        if let Some(parent) = path.parent() {
            let _ = fs::remove_dir(parent);
        }
        Ok(())
    }
}
