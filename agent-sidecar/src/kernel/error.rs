//! Errors of kernel enforcement. Every message says what failed and how to
//! fix it.

use std::path::PathBuf;

/// A failure to set up, update or tear down kernel enforcement.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Missing privileges.
    #[error(
        "agent-sidecar needs root (or the capabilities {missing}) to load eBPF programs, \
         create cgroups and drop the agent's privileges; run it with sudo or as root"
    )]
    NotPrivileged {
        /// Names of the missing capabilities.
        missing: String,
    },
    /// No cgroup v2 mount.
    #[error(
        "no cgroup v2 hierarchy is mounted (searched /proc/self/mountinfo for a `cgroup2` mount); \
         mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified` or boot with \
         systemd.unified_cgroup_hierarchy=1"
    )]
    NoCgroup2,
    /// bpffs is not mounted where expected.
    #[error(
        "bpffs is not mounted at {path}; mount it with `mount -t bpf bpf {path}` \
         (`run` does so itself unless --no-mount-bpffs is given)"
    )]
    NoBpffs {
        /// Expected bpffs mount point.
        path: PathBuf,
    },
    /// The kernel has no BTF.
    #[error(
        "the kernel exposes no BTF ({path} is missing); use a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf {
        /// Path checked.
        path: PathBuf,
    },
    /// The kernel refused to load or attach a program.
    #[error(
        "the kernel refused eBPF program `{program}` ({action}): {detail}; agent-sidecar needs \
         Linux >= 5.8 with CONFIG_BPF_SYSCALL, CONFIG_CGROUP_BPF and BPF links"
    )]
    Bpf {
        /// Program or map name.
        program: String,
        /// What was being done.
        action: &'static str,
        /// Kernel / loader error text.
        detail: String,
    },
    /// An allowlist map is full.
    #[error(
        "the egress allowlist needs {requested} entries in kernel map {map} whose capacity is \
         {capacity}; nothing was enforced with a partial allowlist (fail closed): merge rules \
         into wider CIDRs or split the agent"
    )]
    MapFull {
        /// Map name.
        map: &'static str,
        /// Entries needed.
        requested: usize,
        /// Map capacity.
        capacity: u32,
    },
    /// Another live sidecar owns this agent id.
    #[error(
        "agent id `{agent_id}` is in use by a running agent-sidecar (pid {pid}); choose another \
         --agent-id or stop that sidecar"
    )]
    InUse {
        /// The agent id.
        agent_id: String,
        /// Owner pid, when known.
        pid: String,
    },
    /// The agent id cannot be used as a path component.
    #[error(
        "invalid agent id `{0}`: use 1-64 characters from [A-Za-z0-9._-], not starting with `.` or `-`"
    )]
    InvalidAgentId(String),
    /// No pinned state exists for the agent.
    #[error("no pinned enforcement state for agent `{0}`")]
    NoState(String),
    /// The agent's sockets could not be listed or destroyed.
    #[error(
        "socket diagnostics ({action}): {detail}; destroying the agent's sockets needs \
         CAP_NET_ADMIN and a kernel with CONFIG_INET_DIAG, CONFIG_INET_TCP_DIAG, \
         CONFIG_INET_UDP_DIAG and CONFIG_INET_DIAG_DESTROY"
    )]
    SocketDiag {
        /// What was being done.
        action: &'static str,
        /// Kernel error text.
        detail: String,
    },
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl KernelError {
    /// Builds a [`KernelError::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        KernelError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Builds a [`KernelError::Bpf`] from any displayable error, with its
    /// source chain.
    pub(crate) fn bpf(program: &str, action: &'static str, err: &dyn std::error::Error) -> Self {
        let mut detail = err.to_string();
        let mut src = err.source();
        while let Some(s) = src {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            src = s.source();
        }
        KernelError::Bpf {
            program: program.to_string(),
            action,
            detail,
        }
    }
}
