//! Resource limits of the agent: how many tasks (processes and threads) and
//! how much memory its cgroup may use, so a fork bomb or a runaway
//! allocation stops at the agent.
//!
//! On a unified (cgroup v2) host the limits are written into the agent's own
//! cgroup (`pids.max`, `memory.max`, `memory.swap.max`), enabling the
//! controllers on the way. On a hybrid host, where the `pids` and `memory`
//! controllers are bound to cgroup v1 hierarchies, the agent also gets a
//! cgroup of the same name in each of them (`pids.max`,
//! `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes`), which its first
//! process joins before it executes the command. Either way the limits hold
//! for every descendant and outlive the sidecar.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use super::{cgroup::PARENT, preflight::cgroup2_mount};

/// Default `--pids-max`.
pub const DEFAULT_PIDS_MAX: u64 = 512;

/// Default share of the host's memory an agent may use (`--memory-max`).
pub const DEFAULT_MEMORY_SHARE: u64 = 2;

/// A limit: a number, or `max` for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// At most this many (tasks or bytes).
    At(u64),
    /// No limit.
    Max,
}

impl Limit {
    fn v2(self) -> String {
        match self {
            Limit::At(n) => n.to_string(),
            Limit::Max => "max".into(),
        }
    }

    fn v1_memory(self) -> String {
        match self {
            Limit::At(n) => n.to_string(),
            Limit::Max => "-1".into(),
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.v2())
    }
}

/// An unusable `--pids-max` or `--memory-max`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid limit `{0}`: write a positive number (memory may end in K, M, G or T, e.g. 2G) \
     or `max` for no limit"
)]
pub struct LimitError(String);

/// Parses a task count: a positive number or `max`.
pub fn parse_count(s: &str) -> Result<Limit, LimitError> {
    match s {
        "max" => Ok(Limit::Max),
        _ => match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Limit::At(n)),
            _ => Err(LimitError(s.into())),
        },
    }
}

/// Parses a byte size: a positive number, optionally with K, M, G or T
/// (powers of 1024), or `max`.
pub fn parse_bytes(s: &str) -> Result<Limit, LimitError> {
    if s == "max" {
        return Ok(Limit::Max);
    }
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(LimitError(s.into())),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => n
            .checked_mul(1 << shift)
            .map(Limit::At)
            .ok_or_else(|| LimitError(s.into())),
        _ => Err(LimitError(s.into())),
    }
}

impl FromStr for Limit {
    type Err = LimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_bytes(s)
    }
}

/// The agent's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Tasks (processes and threads) in the agent's cgroup.
    pub pids_max: Limit,
    /// Memory of the agent's cgroup, page cache included; swap is not
    /// allowed on top of it.
    pub memory_max: Limit,
}

impl Default for ResourceLimits {
    /// [`DEFAULT_PIDS_MAX`] tasks and half of the host's memory.
    fn default() -> Self {
        Self {
            pids_max: Limit::At(DEFAULT_PIDS_MAX),
            memory_max: host_memory()
                .map(|m| Limit::At(m / DEFAULT_MEMORY_SHARE))
                .unwrap_or(Limit::Max),
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn host_memory() -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Why a limit could not be set.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// Neither cgroup v2 nor a v1 hierarchy offers the controller.
    #[error(
        "the `{controller}` cgroup controller is available neither in the cgroup v2 hierarchy \
         nor as a cgroup v1 hierarchy, so --{flag} cannot be enforced; enable the controller \
         (e.g. boot with cgroup_enable={controller}) or run with --{flag} max (no limit)"
    )]
    NoController {
        /// `pids` or `memory`.
        controller: &'static str,
        /// The flag that sets it.
        flag: &'static str,
    },
    /// A cgroup file could not be written.
    #[error("setting the agent's resource limits: {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LimitsError + 'a {
    move |source| LimitsError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The limits in force on one agent: its cgroup v1 directories (on a hybrid
/// host) and the `cgroup.procs` files its first process joins them through.
#[derive(Debug, Default)]
pub struct AppliedLimits {
    v1_dirs: Vec<PathBuf>,
    joins: Vec<File>,
}

impl AppliedLimits {
    /// `cgroup.procs` files (cgroup v1) the agent's first process writes `0`
    /// into before it executes the command.
    pub fn joins(&self) -> &[File] {
        &self.joins
    }

    /// Removes the agent's cgroup v1 directories once its processes are
    /// gone (waits up to `timeout` for the kernel to see them empty).
    pub fn remove(self, timeout: Duration) {
        drop(self.joins);
        for dir in self.v1_dirs {
            let deadline = std::time::Instant::now() + timeout;
            while fs::remove_dir(&dir).is_err_and(|e| e.raw_os_error() == Some(libc::EBUSY))
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Sets `limits` on the agent `agent_id` whose cgroup v2 is `cgroup_dir`.
pub fn apply(
    cgroup_dir: &Path,
    agent_id: &str,
    limits: &ResourceLimits,
) -> Result<AppliedLimits, LimitsError> {
    let mut applied = AppliedLimits::default();
    let v2_root = cgroup2_mount().ok();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for (controller, flag, limit) in [
        ("pids", "pids-max", limits.pids_max),
        ("memory", "memory-max", limits.memory_max),
    ] {
        if limit == Limit::Max {
            continue;
        }
        if let Some(root) = &v2_root
            && enable_v2(root, cgroup_dir, controller)?
        {
            let files: &[(&str, String, bool)] = match controller {
                "pids" => &[("pids.max", limit.v2(), true)],
                // No swap on top of the memory limit (optional: swap
                // accounting may be off).
                _ => &[
                    ("memory.max", limit.v2(), true),
                    ("memory.swap.max", "0".into(), false),
                ],
            };
            write_files(cgroup_dir, files)?;
            continue;
        }
        let Some(mount) = v1_mount(&mountinfo, controller) else {
            return Err(LimitsError::NoController { controller, flag });
        };
        let dir = mount.join(PARENT).join(agent_id);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(io_err("creating", &dir))?;
        let files: &[(&str, String, bool)] = match controller {
            "pids" => &[("pids.max", limit.v2(), true)],
            // memory+swap may never be below memory: lift it, set memory,
            // then bring memory+swap down to it (only with swap accounting;
            // the memory limit holds without).
            _ => &[
                ("memory.memsw.limit_in_bytes", "-1".into(), false),
                ("memory.limit_in_bytes", limit.v1_memory(), true),
                ("memory.memsw.limit_in_bytes", limit.v1_memory(), false),
            ],
        };
        write_files(&dir, files)?;
        let procs = dir.join("cgroup.procs");
        let join = OpenOptions::new()
            .write(true)
            .open(&procs)
            .map_err(io_err("opening", &procs))?;
        applied.joins.push(join);
        applied.v1_dirs.push(dir);
    }
    Ok(applied)
}

/// Removes the cgroup v1 directories `run` made for `agent_id` (after a
/// sidecar that died; its processes must be gone). Returns those removed.
pub fn remove_v1(agent_id: &str) -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    ["pids", "memory"]
        .into_iter()
        .filter_map(|c| v1_mount(&mountinfo, c))
        .map(|m| m.join(PARENT).join(agent_id))
        .filter(|dir| fs::remove_dir(dir).is_ok())
        .collect()
}

/// Writes `(file, value, required)` in order; a file that is not required
/// is skipped when the kernel does not offer it.
fn write_files(dir: &Path, files: &[(&str, String, bool)]) -> Result<(), LimitsError> {
    for (name, value, required) in files {
        let path = dir.join(name);
        match fs::write(&path, value) {
            Ok(()) => {}
            Err(e) if !required && e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("writing", &path)(e)),
        }
    }
    Ok(())
}

/// Enables `controller` from the cgroup v2 root down to the agent's parent;
/// `false` when the v2 hierarchy does not offer it.
fn enable_v2(root: &Path, cgroup_dir: &Path, controller: &str) -> Result<bool, LimitsError> {
    let offered = |dir: &Path| {
        fs::read_to_string(dir.join("cgroup.controllers"))
            .is_ok_and(|s| s.split_whitespace().any(|c| c == controller))
    };
    if !offered(root) {
        return Ok(false);
    }
    let Some(parent) = cgroup_dir.parent() else {
        return Ok(false);
    };
    let Ok(rel) = parent.strip_prefix(root) else {
        return Ok(false);
    };
    let mut dir = root.to_path_buf();
    let mut chain = vec![dir.clone()];
    for part in rel.components() {
        dir.push(part);
        chain.push(dir.clone());
    }
    for dir in chain {
        let control = dir.join("cgroup.subtree_control");
        let enabled = fs::read_to_string(&control)
            .is_ok_and(|s| s.split_whitespace().any(|c| c == controller));
        if !enabled {
            fs::write(&control, format!("+{controller}"))
                .map_err(io_err("enabling a controller in", &control))?;
        }
    }
    Ok(offered(cgroup_dir))
}

/// The mount point of the cgroup v1 hierarchy holding `controller`.
fn v1_mount(mountinfo: &str, controller: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split_whitespace();
        if right.next()? != "cgroup" {
            return None;
        }
        let options = right.nth(1)?;
        let mount_point = left.split_whitespace().nth(4)?;
        options
            .split(',')
            .any(|o| o == controller)
            .then(|| PathBuf::from(mount_point))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_units_and_max() {
        assert_eq!(parse_bytes("2G"), Ok(Limit::At(2 << 30)));
        assert_eq!(parse_bytes("512m"), Ok(Limit::At(512 << 20)));
        assert_eq!(parse_bytes("4096"), Ok(Limit::At(4096)));
        assert_eq!(parse_bytes("max"), Ok(Limit::Max));
        assert_eq!(parse_count("64"), Ok(Limit::At(64)));
        for bad in ["0", "-1", "2X", "G", "", "99999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert!(parse_count("1K").unwrap_err().to_string().contains("max"));
    }

    #[test]
    fn finds_v1_hierarchies_by_controller() {
        let info = "30 25 0:26 / /sys/fs/cgroup/pids rw,relatime shared:9 - cgroup cgroup rw,pids\n\
                    31 25 0:27 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory\n\
                    32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            v1_mount(info, "pids"),
            Some(PathBuf::from("/sys/fs/cgroup/pids"))
        );
        assert_eq!(
            v1_mount(info, "memory"),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(v1_mount(info, "cpu"), None);
    }
}
