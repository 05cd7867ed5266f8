//! Host checks run before anything is loaded, each failing with the fix.

use std::path::{Path, PathBuf};

use super::KernelError;

/// Capabilities `run` needs, as (bit, name).
const REQUIRED_CAPS: [(u32, &str); 6] = [
    (5, "CAP_KILL"),
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (12, "CAP_NET_ADMIN"),
    (21, "CAP_SYS_ADMIN"),
    (39, "CAP_BPF"),
];

/// bpffs superblock magic (`BPF_FS_MAGIC`).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Default bpffs mount point.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";
/// Where the kernel exposes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Runs every check: privileges, cgroup v2, bpffs at `bpffs` (mounted
/// there first when absent and `mount` says so), BTF. Returns the cgroup v2
/// mount point.
pub fn check(bpffs: &Path, mount: bool) -> Result<PathBuf, KernelError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| KernelError::io("reading", "/proc/self/status", e))?;
    check_caps(&status)?;
    let cgroup2 = cgroup2_mount()?;
    if mount && check_bpffs(bpffs).is_err() {
        mount_bpffs(bpffs)?;
    }
    check_bpffs(bpffs)?;
    if !Path::new(VMLINUX_BTF).exists() {
        return Err(KernelError::NoBtf {
            path: VMLINUX_BTF.into(),
        });
    }
    Ok(cgroup2)
}

/// Checks the effective capability set in `/proc/self/status` text.
pub fn check_caps(status: &str) -> Result<(), KernelError> {
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = REQUIRED_CAPS
        .iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(KernelError::NotPrivileged {
            missing: missing.join(", "),
        })
    }
}

/// Finds the cgroup v2 mount point from `/proc/self/mountinfo`.
pub fn cgroup2_mount() -> Result<PathBuf, KernelError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| KernelError::io("reading", "/proc/self/mountinfo", e))?;
    cgroup2_from_mountinfo(&info).ok_or(KernelError::NoCgroup2)
}

/// Parses mountinfo text for the first `cgroup2` mount point.
pub fn cgroup2_from_mountinfo(info: &str) -> Option<PathBuf> {
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mountinfo(mount_point)))
    })
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Mounts a bpffs at `path` (created if missing), `nosuid,nodev,noexec`,
/// mode 0700, as eBPF agents do on hosts that do not mount it at boot.
fn mount_bpffs(path: &Path) -> Result<(), KernelError> {
    use nix::mount::{MsFlags, mount};
    std::fs::create_dir_all(path).map_err(|e| KernelError::io("creating", path, e))?;
    mount(
        Some("bpf"),
        path,
        Some("bpf"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| KernelError::io("mounting bpffs at", path, std::io::Error::from(e)))?;
    tracing::info!(
        path = %path.display(),
        "bpffs was not mounted: mounted it (--no-mount-bpffs refuses instead)"
    );
    Ok(())
}

/// Checks that `path` is a mounted bpffs.
pub fn check_bpffs(path: &Path) -> Result<(), KernelError> {
    match nix::sys::statfs::statfs(path) {
        Ok(fs) if fs.filesystem_type().0 == BPF_FS_MAGIC => Ok(()),
        _ => Err(KernelError::NoBpffs {
            path: path.to_path_buf(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_caps_are_named() {
        let e = check_caps("Name:\tx\nCapEff:\t0000000000000000\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CAP_BPF") && e.contains("CAP_NET_ADMIN") && e.contains("sudo"),
            "{e}"
        );
        assert!(check_caps("CapEff:\t000001ffffffffff\n").is_ok());
        let e = check_caps("CapEff:\t0000000000200000\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("CAP_SYS_ADMIN") && e.contains("CAP_BPF"), "{e}");
    }

    #[test]
    fn finds_cgroup2_in_hybrid_and_unified_layouts() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_from_mountinfo(hybrid),
            Some("/sys/fs/cgroup/unified".into())
        );
        let unified =
            "25 1 0:22 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_from_mountinfo(unified),
            Some("/sys/fs/cgroup".into())
        );
        let none = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup2_from_mountinfo(none), None);
        assert!(
            KernelError::NoCgroup2
                .to_string()
                .contains("mount -t cgroup2")
        );
    }

    #[test]
    fn bpffs_error_says_how_to_mount() {
        let e = check_bpffs(Path::new("/proc")).unwrap_err().to_string();
        assert!(e.contains("mount -t bpf bpf /proc"), "{e}");
    }
}
