//! Starts the agent's command: born inside its cgroup (`clone3` with
//! `CLONE_INTO_CGROUP`, so it never runs a single instruction outside it and
//! no migration is needed), as an unprivileged user, with an empty capability
//! bounding set, no ambient capabilities and `no_new_privs`, the environment
//! it is given and nothing else, umask 077, an IPC namespace of its own, no
//! descriptor but 0-2, and the
//! [`sandbox`](super::sandbox) (seccomp filter, Landlock scopes).
//!
//! Between `clone3` and `execve` the child only makes async-signal-safe
//! system calls on memory prepared before the clone: it allocates nothing.

use std::{
    ffi::{CString, OsStr, OsString},
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::{ffi::OsStrExt, process::ExitStatusExt},
    },
    path::PathBuf,
    process::ExitStatus,
};

use tokio::io::unix::AsyncFd;

use super::{sandbox::Sandbox, user::UserSpec};

/// `struct clone_args` (linux/sched.h), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The running agent: its pid and a pidfd that becomes readable when it exits.
pub struct AgentProcess {
    pid: u32,
    pidfd: AsyncFd<OwnedFd>,
}

impl AgentProcess {
    /// The agent's process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the agent to exit and reaps it.
    pub async fn wait(&self) -> io::Result<ExitStatus> {
        loop {
            let mut guard = self.pidfd.readable().await?;
            let mut status = 0;
            // SAFETY: plain waitpid(2) on our own child.
            let rc = unsafe { libc::waitpid(self.pid as i32, &mut status, libc::WNOHANG) };
            match rc {
                0 => guard.clear_ready(),
                rc if rc < 0 => {
                    let err = io::Error::last_os_error();
                    if err.raw_os_error() != Some(libc::EINTR) {
                        return Err(err);
                    }
                }
                _ => return Ok(ExitStatus::from_raw(status)),
            }
        }
    }
}

/// What the agent gets besides its command.
pub struct ChildSetup<'a> {
    /// The agent's user.
    pub user: UserSpec,
    /// The agent's whole environment.
    pub env: &'a [(OsString, OsString)],
    /// `cgroup.procs` files (cgroup v1) the child joins before exec.
    pub joins: &'a [std::fs::File],
    /// Seccomp filter and Landlock scopes.
    pub sandbox: &'a Sandbox,
    /// Host socket files to cover with `/dev/null` in the agent's own mount
    /// namespace ([`super::unix_mask`]).
    pub masked_sockets: &'a [PathBuf],
}

/// Everything the child needs, built before the clone.
struct Prepared<'a> {
    /// Paths to try, in order: the program itself when it has a slash,
    /// otherwise every PATH entry holding a file of that name.
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cap_last: libc::c_ulong,
    user: UserSpec,
    joins: Vec<RawFd>,
    sandbox: &'a Sandbox,
    masked_sockets: Vec<CString>,
}

/// Starts `argv` inside the cgroup whose directory is `cgroup_dir`, as
/// described by `setup`.
pub fn spawn(
    argv: &[OsString],
    cgroup_dir: RawFd,
    setup: &ChildSetup<'_>,
) -> io::Result<AgentProcess> {
    let prepared = prepare(argv, setup)?;
    let mut argv_ptrs: Vec<*const libc::c_char> =
        prepared.argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> =
        prepared.envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());

    // The child reports a failure before exec as an errno on this pipe; a
    // successful exec closes it (O_CLOEXEC) with nothing written.
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned here only.
    let (report_rx, report_tx) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a
    // copy of this thread's stack and returns 0 here.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc == 0 {
        // SAFETY: we are the child; `exec_child` never returns.
        unsafe { exec_child(&prepared, &argv_ptrs, &envp_ptrs, report_tx.as_raw_fd()) }
    }
    if rc < 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENOSYS) => io::Error::other(
                "clone3 is not available: agent-sidecar needs Linux >= 5.7 and no seccomp \
                 filter that blocks clone3 for the sidecar",
            ),
            _ => err,
        });
    }
    drop(report_tx);
    // SAFETY: CLONE_PIDFD stored a new fd that we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let pid = rc as u32;

    let mut errno = [0u8; 4];
    let n = read_full(report_rx.as_raw_fd(), &mut errno);
    if n == errno.len() {
        // The child has exited (it never reached exec): reap it.
        let mut status = 0;
        // SAFETY: plain waitpid(2) on our own child.
        unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)));
    }
    Ok(AgentProcess {
        pid,
        pidfd: crate::kernel::events::watch(pidfd)?,
    })
}

/// The files `program` may be: itself when it holds a slash, otherwise
/// every directory of the agent's `PATH` (the default one when unset)
/// holding a file of that name, in order, as execvp tries them (one the
/// agent's user cannot execute is skipped at exec).
pub(crate) fn resolve(program: &OsStr, vars: &[(OsString, OsString)]) -> io::Result<Vec<PathBuf>> {
    if program.as_bytes().contains(&b'/') {
        return Ok(vec![PathBuf::from(program)]);
    }
    let path = vars
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let found: Vec<PathBuf> = std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .filter(|p| p.metadata().is_ok_and(|m| m.is_file()))
        .collect();
    if found.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not in PATH", program.to_string_lossy()),
        ));
    }
    Ok(found)
}

fn prepare<'a>(argv: &[OsString], setup: &ChildSetup<'a>) -> io::Result<Prepared<'a>> {
    let cstring = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{s:?} contains a NUL byte"),
            )
        })
    };
    let program = argv
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let argv = argv
        .iter()
        .map(|a| cstring(a))
        .collect::<io::Result<Vec<_>>>()?;

    let vars = setup.env;
    let envp = vars
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            cstring(&kv)
        })
        .collect::<io::Result<Vec<_>>>()?;

    let candidates = resolve(program, vars)?
        .iter()
        .map(|p| cstring(p.as_os_str()))
        .collect::<io::Result<Vec<_>>>()?;

    let cap_last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
    Ok(Prepared {
        candidates,
        argv,
        envp,
        cap_last,
        user: setup.user,
        joins: setup.joins.iter().map(|f| f.as_raw_fd()).collect(),
        sandbox: setup.sandbox,
        masked_sockets: setup
            .masked_sockets
            .iter()
            .map(|p| cstring(p.as_os_str()))
            .collect::<io::Result<_>>()?,
    })
}

/// The child side: drop privileges, exec, or report errno and exit 127.
///
/// # Safety
/// Must only be called in the child of `clone3`, with pointer arrays that are
/// NUL-terminated and point into `prepared`.
unsafe fn exec_child(
    prepared: &Prepared,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    report: RawFd,
) -> ! {
    // SAFETY: async-signal-safe system calls only, on prepared memory.
    unsafe {
        let errno = match confine(prepared) {
            Err(e) => e,
            Ok(()) => {
                let mut first_error = libc::ENOENT;
                for path in &prepared.candidates {
                    libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                    match *libc::__errno_location() {
                        // Keep looking, as execvp does.
                        libc::EACCES => first_error = libc::EACCES,
                        libc::ENOENT | libc::ENOTDIR => {}
                        other => {
                            first_error = other;
                            break;
                        }
                    }
                }
                first_error
            }
        };
        let bytes = errno.to_ne_bytes();
        libc::write(report, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

/// Resets signal state inherited from the sidecar, joins the cgroup v1
/// limits, marks every descriptor but 0-2 close-on-exec, sets umask 077,
/// enters an IPC namespace of its own, becomes the agent's user without any
/// capability and enters the sandbox.
/// Returns the errno of the first failing call.
///
/// # Safety
/// Only between clone and exec.
unsafe fn confine(prepared: &Prepared<'_>) -> Result<(), i32> {
    // SAFETY: async-signal-safe system calls with valid arguments.
    unsafe {
        for &fd in &prepared.joins {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(*libc::__errno_location());
            }
        }
        // Nothing the sidecar or the operator's shell left open reaches the
        // agent (the error report pipe stays usable until exec).
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            return Err(*libc::__errno_location());
        }
        // Files the agent creates (in /tmp too) are its own.
        libc::umask(0o077);
        // System V IPC objects and POSIX message queues, whose modes the
        // umask does not govern, are the agent's own too: a namespace of
        // its own (the network and mount namespaces stay the host's).
        if libc::unshare(libc::CLONE_NEWIPC) != 0 {
            return Err(*libc::__errno_location());
        }
        mask_sockets(&prepared.masked_sockets)?;
        drop_privileges(prepared.user, prepared.cap_last)?;
        super::sandbox::enter(prepared.sandbox)
    }
}

/// Covers each host socket file of `paths` with `/dev/null` in a mount
/// namespace of the agent's own (a slave of the host's).
///
/// # Safety
/// Only between clone and exec, while still privileged.
unsafe fn mask_sockets(paths: &[CString]) -> Result<(), i32> {
    if paths.is_empty() {
        return Ok(());
    }
    let errno = || {
        // SAFETY: reading this thread's errno.
        unsafe { *libc::__errno_location() }
    };
    // SAFETY: system calls on NUL-terminated strings prepared before the clone.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(errno());
        }
        let root = c"/";
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            return Err(errno());
        }
        let null = c"/dev/null";
        for path in paths {
            if libc::mount(
                null.as_ptr(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
                && errno() != libc::ENOENT
            {
                return Err(errno());
            }
        }
    }
    Ok(())
}

/// Becomes `user` without any capability.
///
/// # Safety
/// Only between clone and exec.
unsafe fn drop_privileges(user: UserSpec, cap_last: libc::c_ulong) -> Result<(), i32> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            // SAFETY: reading this thread's errno.
            Err(unsafe { *libc::__errno_location() })
        }
    };
    let UserSpec { uid, gid } = user;
    // SAFETY: async-signal-safe system calls with valid arguments.
    unsafe {
        // 0. The sidecar ignores SIGPIPE; ignored dispositions survive exec.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        check(libc::sigprocmask(
            libc::SIG_SETMASK,
            &empty,
            std::ptr::null_mut(),
        ))?;
        // 1. Groups, then gid, while we still may.
        check(libc::setgroups(1, &gid))?;
        check(libc::setresgid(gid, gid, gid))?;
        // 2. Empty the capability bounding set and the ambient set, so no
        //    later exec can regain a capability.
        for cap in 0..=cap_last {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                let e = *libc::__errno_location();
                if e != libc::EINVAL {
                    return Err(e);
                }
            }
        }
        check(libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ))?;
        // 3. Leaving uid 0 for a non-zero uid clears the permitted and
        //    effective sets (PR_SET_KEEPCAPS is off).
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0))?;
        check(libc::setresuid(uid, uid, uid))?;
        // 4. setuid binaries and file capabilities grant nothing from now on.
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    }
}

fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled part of `buf`.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        match n {
            n if n > 0 => got += n as usize,
            0 => break,
            _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            _ => break,
        }
    }
    got
}
