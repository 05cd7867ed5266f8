//! Starts the agent's command: inside its cgroup before it executes a single
//! instruction of the command, as an unprivileged user, with an empty
//! capability bounding set, no ambient capabilities and `no_new_privs`.

use std::{ffi::OsString, fs::File, io, os::fd::AsRawFd};

use tokio::process::{Child, Command};

use super::user::UserSpec;

/// Spawns `argv` in the cgroup whose `cgroup.procs` is `procs`, as `user`.
pub fn spawn(
    argv: &[OsString],
    procs: &File,
    user: UserSpec,
    env: &[(String, String)],
) -> io::Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::other("empty command"))?;
    let cap_last: libc::c_ulong = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
    let procs_fd = procs.as_raw_fd();
    let UserSpec { uid, gid } = user;
    let mut cmd = Command::new(program);
    cmd.args(args).kill_on_drop(false);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls on values captured by copy; it
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: libc::c_int| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            };
            // 1. Join the agent's cgroup ("0" means the writing process).
            if libc::write(procs_fd, b"0\n".as_ptr().cast(), 2) != 2 {
                return Err(io::Error::last_os_error());
            }
            // 2. Groups, then gid, while we still may.
            check(libc::setgroups(1, &gid))?;
            check(libc::setresgid(gid, gid, gid))?;
            // 3. Empty the capability bounding set and the ambient set, so no
            //    later exec can regain a capability.
            for cap in 0..=cap_last {
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
                    && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
                {
                    return Err(io::Error::last_os_error());
                }
            }
            check(libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            ))?;
            // 4. Leaving uid 0 for a non-zero uid clears the permitted and
            //    effective sets (PR_SET_KEEPCAPS is off after fork).
            check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0))?;
            check(libc::setresuid(uid, uid, uid))?;
            // 5. setuid binaries and file capabilities grant nothing from now on.
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            Ok(())
        });
    }
    cmd.spawn()
}
