//! The pod's cgroup, found from its UID under the host's cgroup v2 tree as
//! the kubelet lays it out, and the sidecar's own container under it.
//!
//! The kubelet's two cgroup drivers name a pod's cgroup differently:
//!
//! - systemd: `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid
//!   with _ for ->.slice` (`besteffort`, `burstable`), and
//!   `kubepods.slice/kubepods-pod<uid_>.slice` for guaranteed pods; the
//!   containers are `cri-containerd-<id>.scope` (or `crio-<id>.scope`);
//! - cgroupfs: `kubepods/<qos>/pod<uid>` and `kubepods/pod<uid>`; the
//!   containers are `<id>`.
//!
//! The programs are attached at the pod's cgroup, so every container
//! under it, present or created later (a restart), is governed from its
//! first instruction by the kernel's cgroup hierarchy; only the sidecar's
//! own container is exempt, by its exact cgroup id.

use std::{
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Default mount of the host's cgroup v2 tree.
pub const DEFAULT_HOST_CGROUPFS: &str = "/sys/fs/cgroup";

/// Why the pod's cgroups could not be found.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The pod UID is not a UID.
    #[error(
        "`{0}` is not a pod UID; give the pod's metadata.uid (downward API: fieldRef metadata.uid) as --pod-uid or AGENT_SIDECAR_POD_UID"
    )]
    BadUid(String),
    /// No layout matched.
    #[error(
        "no cgroup of pod {uid} under {root}: looked for {tried}; mount the host's /sys/fs/cgroup (read-only) and give its path as --host-cgroupfs"
    )]
    NotFound {
        /// The pod UID.
        uid: String,
        /// The cgroupfs root.
        root: PathBuf,
        /// The paths looked at.
        tried: String,
    },
    /// More than one layout matched: a stale tree, or a forged one.
    #[error("pod {uid} has more than one cgroup: {found}; refusing to guess which one governs it")]
    Ambiguous {
        /// The pod UID.
        uid: String,
        /// The directories found.
        found: String,
    },
    /// The sidecar's own container could not be told apart.
    #[error(
        "cannot find the sidecar's own container under {pod}: {why}; give it as --sidecar-cgroup (a path under the pod's cgroup)"
    )]
    OwnCgroup {
        /// The pod's cgroup.
        pod: PathBuf,
        /// What went wrong.
        why: String,
    },
}

/// The candidate cgroups of pod `uid` under `root`, in both drivers'
/// layouts and every QoS class.
pub fn candidates(root: &Path, uid: &str) -> Result<Vec<PathBuf>, PodError> {
    let ok = uid.len() >= 8
        && uid.len() <= 64
        && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if !ok {
        return Err(PodError::BadUid(uid.to_string()));
    }
    let uid = uid.to_ascii_lowercase();
    let under = uid.replace('-', "_");
    let systemd = root.join("kubepods.slice");
    let cgroupfs = root.join("kubepods");
    let mut out = vec![systemd.join(format!("kubepods-pod{under}.slice"))];
    for qos in ["burstable", "besteffort"] {
        out.push(
            systemd
                .join(format!("kubepods-{qos}.slice"))
                .join(format!("kubepods-{qos}-pod{under}.slice")),
        );
    }
    out.push(cgroupfs.join(format!("pod{uid}")));
    for qos in ["burstable", "besteffort"] {
        out.push(cgroupfs.join(qos).join(format!("pod{uid}")));
    }
    Ok(out)
}

/// The cgroup of pod `uid` under the host cgroupfs `root`: exactly one of
/// [`candidates`] must exist.
pub fn find(root: &Path, uid: &str) -> Result<PathBuf, PodError> {
    let all = candidates(root, uid)?;
    let found: Vec<&PathBuf> = all.iter().filter(|p| p.is_dir()).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(PodError::NotFound {
            uid: uid.to_string(),
            root: root.to_path_buf(),
            tried: join(&all),
        }),
        many => Err(PodError::Ambiguous {
            uid: uid.to_string(),
            found: join(many.iter().copied()),
        }),
    }
}

fn join<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> String {
    paths
        .into_iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the sidecar's own container is found.
#[derive(Clone, Debug)]
pub struct OwnCgroupHints {
    /// `--sidecar-cgroup`: absolute, or relative to the pod's cgroup.
    pub configured: Option<PathBuf>,
    /// The text of `/proc/self/cgroup`.
    pub proc_self_cgroup: String,
    /// The inode of the container's own `/sys/fs/cgroup` (its cgroup
    /// namespace's root, which is its container's cgroup) when the
    /// sidecar runs in a private cgroup namespace.
    pub namespace_root_ino: Option<u64>,
}

impl OwnCgroupHints {
    /// The hints of this process: `/proc/self/cgroup` and the inode of
    /// `/sys/fs/cgroup`.
    pub fn of_self(configured: Option<PathBuf>) -> io::Result<Self> {
        Ok(Self {
            configured,
            proc_self_cgroup: std::fs::read_to_string("/proc/self/cgroup")?,
            namespace_root_ino: std::fs::metadata(DEFAULT_HOST_CGROUPFS)
                .ok()
                .map(|m| m.ino()),
        })
    }
}

/// The sidecar's own container cgroup: a child of `pod`. From the
/// configuration when given; else from `/proc/self/cgroup` when the
/// sidecar sees the host's cgroup paths; else (a private cgroup
/// namespace, where that file says `0::/`) the child of `pod` whose
/// cgroup id is the inode of the container's own `/sys/fs/cgroup`.
pub fn own_cgroup(root: &Path, pod: &Path, hints: &OwnCgroupHints) -> Result<PathBuf, PodError> {
    let err = |why: String| PodError::OwnCgroup {
        pod: pod.to_path_buf(),
        why,
    };
    let candidate = if let Some(c) = &hints.configured {
        if c.is_absolute() {
            c.clone()
        } else {
            pod.join(c)
        }
    } else {
        let line = hints
            .proc_self_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| err("/proc/self/cgroup has no cgroup v2 line".into()))?;
        let rel = line.trim().trim_start_matches('/');
        if !rel.is_empty() && !rel.starts_with("..") {
            root.join(rel)
        } else {
            let ino = hints.namespace_root_ino.ok_or_else(|| {
                err("in a private cgroup namespace and /sys/fs/cgroup cannot be read".into())
            })?;
            child_with_ino(pod, ino)
                .map_err(|e| err(format!("reading {}: {e}", pod.display())))?
                .ok_or_else(|| {
                    err(format!(
                        "no container cgroup has the id {ino} of this container's /sys/fs/cgroup"
                    ))
                })?
        }
    };
    // Exactly one level under the pod: the exemption is the sidecar's
    // container and nothing else.
    if candidate.parent() != Some(pod) {
        return Err(err(format!(
            "{} is not a container directly under the pod's cgroup",
            candidate.display()
        )));
    }
    if !candidate.is_dir() {
        return Err(err(format!("{} does not exist", candidate.display())));
    }
    Ok(candidate)
}

fn child_with_ino(dir: &Path, ino: u64) -> io::Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() && meta.ino() == ino {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
