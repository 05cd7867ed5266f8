//! The agent's kernel confinement besides its cgroup, prepared before the
//! clone and put in place by the child just before `execve`:
//!
//! - a **seccomp filter** that refuses `io_uring_setup` (its socket and
//!   network operations would bypass the filter) and, where the BPF LSM
//!   socket guard is not in force, every `socket(2)` family but `AF_UNIX`,
//!   `AF_INET` and `AF_INET6` and every `socketpair(2)` family but
//!   `AF_UNIX` (the x32 system call numbers included; a 32-bit system call
//!   kills the process);
//! - **Landlock scopes** (Linux >= 6.12, Landlock ABI 6): the agent may not
//!   connect or send to an abstract unix socket created outside its own
//!   Landlock domain, nor signal a process outside it. Each agent has a
//!   domain of its own, so this also separates agents from each other.

use std::os::fd::OwnedFd;

use landlock::{CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetError, Scope};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Socket families the agent may create: Unix, IPv4 and IPv6. Every other
/// (netlink, vsock, packet, bluetooth, alg, xdp...) is refused.
pub const ALLOWED_FAMILIES: [i32; 3] = [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6];

/// Bit of the x32 ABI in a system call number.
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// Why the confinement could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The seccomp filter did not compile.
    #[error("building the agent's seccomp filter: {0}")]
    Seccomp(String),
    /// Landlock refused the ruleset.
    #[error("building the agent's Landlock ruleset: {0}")]
    Landlock(#[from] RulesetError),
    /// The kernel cannot scope abstract unix sockets and signals.
    #[error(
        "this kernel cannot keep the agent away from abstract unix sockets and other \
         processes' signals (needs Landlock ABI 6, Linux >= 6.12, with `landlock` in \
         /sys/kernel/security/lsm); run with --allow-unscoped-agent to accept that"
    )]
    NoLandlockScopes,
}

/// The confinement, ready for the child.
#[derive(Debug)]
pub struct Sandbox {
    /// The seccomp filter.
    pub seccomp: BpfProgram,
    /// A Landlock ruleset with the scopes (`None` when the kernel has none
    /// and the operator accepted that).
    pub landlock: Option<OwnedFd>,
}

/// Builds the confinement. `socket_families`: whether the seccomp filter
/// refuses socket families (when the BPF LSM guard does not). `require_scopes`:
/// fail when the kernel cannot scope abstract unix sockets and signals.
pub fn prepare(socket_families: bool, require_scopes: bool) -> Result<Sandbox, SandboxError> {
    let seccomp = seccomp_filter(socket_families)?;
    let landlock = landlock_ruleset()?;
    if landlock.is_none() && require_scopes {
        return Err(SandboxError::NoLandlockScopes);
    }
    Ok(Sandbox { seccomp, landlock })
}

fn landlock_ruleset() -> Result<Option<OwnedFd>, SandboxError> {
    let created = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .and_then(|r| r.create());
    match created {
        Ok(created) => Ok(created.into()),
        // Too old a kernel, or Landlock off: no scopes.
        Err(RulesetError::Scope(_) | RulesetError::CreateRuleset(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn seccomp_filter(socket_families: bool) -> Result<BpfProgram, SandboxError> {
    let err = |e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string());
    let family_not = |family: i32| {
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, family as u64)
            .map_err(err)
    };
    let mut rules = std::collections::BTreeMap::new();
    // io_uring: refused outright (its operations bypass the filter).
    let nr = libc::SYS_io_uring_setup;
    rules.insert(nr, Vec::new());
    rules.insert(nr | X32_SYSCALL_BIT, Vec::new());
    if socket_families {
        // socket(): refused unless the family is one of ALLOWED_FAMILIES.
        let socket = SeccompRule::new(
            ALLOWED_FAMILIES
                .iter()
                .map(|&f| family_not(f))
                .collect::<Result<_, _>>()?,
        )
        .map_err(err)?;
        let socketpair = SeccompRule::new(vec![family_not(libc::AF_UNIX)?]).map_err(err)?;
        for (nr, rule) in [
            (libc::SYS_socket, socket),
            (libc::SYS_socketpair, socketpair),
        ] {
            rules.insert(nr, vec![rule.clone()]);
            rules.insert(nr | X32_SYSCALL_BIT, vec![rule]);
        }
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| err(e))
}

/// The host's protections of world-writable sticky directories (`/tmp`)
/// that are off: without them, an agent could plant a symlink or a file
/// there that another agent then opens. Host-wide settings, so `run` only
/// warns about them.
pub fn sticky_dir_protections_off() -> Vec<&'static str> {
    [
        ("fs.protected_symlinks", "/proc/sys/fs/protected_symlinks"),
        ("fs.protected_regular", "/proc/sys/fs/protected_regular"),
        ("fs.protected_fifos", "/proc/sys/fs/protected_fifos"),
    ]
    .into_iter()
    .filter(|(_, path)| std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "0"))
    .map(|(name, _)| name)
    .collect()
}

/// Puts the confinement in place for the calling process: the Landlock
/// scopes, then the seccomp filter. Returns the errno of a failing call.
///
/// # Safety
/// Between clone and exec only: makes system calls on prepared memory and
/// allocates nothing. `no_new_privs` must already be set.
pub unsafe fn enter(sandbox: &Sandbox) -> Result<(), i32> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain system calls on valid arguments.
    unsafe {
        if let Some(fd) = &sandbox.landlock
            && libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0) != 0
        {
            return Err(*libc::__errno_location());
        }
        let prog = libc::sock_fprog {
            len: sandbox.seccomp.len() as u16,
            filter: sandbox.seccomp.as_ptr() as *mut libc::sock_filter,
        };
        // Every refusal also goes to the kernel's audit log (type 1326,
        // SECCOMP) with the pid, uid and system call, as
        // /proc/sys/kernel/seccomp/actions_logged allows.
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_LOG,
            &prog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(*libc::__errno_location());
        }
    }
    Ok(())
}
