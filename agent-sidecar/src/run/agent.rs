//! `run`'s agent: the user it runs as, then its resource limits,
//! environment and sandbox, its start inside the cgroup, and the wait for
//! its exit with signals forwarded.

use std::{os::fd::AsRawFd, path::Path, sync::Mutex};

use tracing::{error, info, warn};

use super::{
    EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_SIDECAR_FAILED, RunError, RunOptions, child, env,
    reach, sandbox, signals,
    uid_pool::{self, UidLease},
    unix_mask,
    user::{UserError, UserSpec},
};
use crate::{
    kernel::{Enforcer, limits},
    metrics::Metrics,
};

/// Who the agent runs as: `--user`, else (as root) a uid of its own from
/// the pool, held by the lease until `run` ends, else the invoker. Never
/// uid 0.
pub(crate) fn agent_user(
    opts: &RunOptions,
    agent_id: &str,
) -> Result<(UserSpec, Option<UidLease>), RunError> {
    let (user, lease) = match opts.user {
        Some(u) => (u, None),
        None if nix::unistd::geteuid().is_root() => {
            let lease = uid_pool::allocate(Path::new(uid_pool::LOCK_DIR), &opts.uid_range)?;
            (lease.user(), Some(lease))
        }
        None => (
            UserSpec {
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
            },
            None,
        ),
    };
    info!(
        agent_id = %agent_id,
        uid = user.uid,
        gid = user.gid,
        dynamic = lease.is_some(),
        "agent user"
    );
    if user.uid == 0 {
        return Err(RunError::Io(
            "refusing to run the agent as uid 0",
            std::io::Error::other(UserError::Root("0".into()).to_string()),
        ));
    }
    Ok((user, lease))
}

/// Everything the agent's process is started from.
pub(crate) struct Launch<'a> {
    pub(crate) opts: &'a RunOptions,
    pub(crate) agent_id: &'a str,
    pub(crate) user: UserSpec,
    /// What the sidecar adds to the agent's environment (its id, the
    /// proxies, the CA bundle).
    pub(crate) sidecar_env: Vec<(String, String)>,
    /// `(secret name, variable)` of every secret read from the
    /// environment: never passed on to the agent.
    pub(crate) secret_sources: &'a [(String, String)],
}

impl Launch<'_> {
    /// Starts the agent in `enforcer`'s cgroup and waits for it, forwarding
    /// signals; returns its exit code. `applied_limits` receives the
    /// cgroup limits set, for their removal at the end.
    pub(crate) async fn run_to_exit(
        &self,
        enforcer: &Mutex<Enforcer>,
        metrics: &Metrics,
        applied_limits: &mut Option<limits::AppliedLimits>,
        socket_scan: unix_mask::Scan,
    ) -> Result<i32, RunError> {
        let (agent_id, user) = (self.agent_id, self.user);
        let child = match self.start(enforcer, metrics, applied_limits, socket_scan) {
            Ok(child) => child,
            Err(e) => {
                error!(agent_id = %agent_id, error = %e, "cannot start the agent");
                return Err(e);
            }
        };
        let pid = child.id();
        info!(agent_id = %agent_id, pid, user = %user, "agent started");
        let forwarder = signals::Forwarder::start(pid)
            .map_err(|e| RunError::Io("installing signal handlers", e))?;
        let status = child
            .wait()
            .await
            .map_err(|e| RunError::Io("waiting for the agent", e))?;
        drop(forwarder);
        Ok(exit_code(status))
    }

    /// Sets the agent's resource limits, builds its environment and sandbox
    /// and starts it. `socket_scan` is the search for the host sockets to
    /// hide from the agent, started by the caller.
    fn start(
        &self,
        enforcer: &Mutex<Enforcer>,
        metrics: &Metrics,
        applied_limits: &mut Option<limits::AppliedLimits>,
        socket_scan: unix_mask::Scan,
    ) -> Result<child::AgentProcess, RunError> {
        let (opts, agent_id, user) = (self.opts, self.agent_id, self.user);

        let guard = enforcer.lock().expect("enforcer lock");
        let applied = applied_limits.insert(limits::apply(
            guard.cgroup().path(),
            agent_id,
            &opts.limits,
        )?);
        info!(
            agent_id,
            pids_max = %opts.limits.pids_max,
            memory_max = %opts.limits.memory_max,
            "agent resource limits"
        );
        let operator: Vec<_> = std::env::vars_os().collect();
        let home = env::home_of(user.uid);
        let vars = env::agent_env(&env::EnvInputs {
            operator: &operator,
            options: &opts.env,
            secret_sources: self.secret_sources,
            sidecar: &self.sidecar_env,
            home: &home,
        })?;
        self.check_reach(&vars)?;
        let sandbox = sandbox::prepare(!guard.lsm_guard(), !opts.allow_unscoped)?;
        let off = sandbox::sticky_dir_protections_off();
        if !off.is_empty() {
            warn!(
                agent_id,
                sysctls = %off.join(" "),
                "another agent could plant a symlink or file in /tmp that this agent then opens: \
                 set these sysctls to 1 (fs.protected_regular and fs.protected_fifos to 2)"
            );
        }
        if sandbox.landlock.is_none() {
            warn!(
                agent_id,
                "the kernel cannot scope the agent (Landlock ABI 6): it may reach abstract unix \
                 sockets and signal processes of its uid outside it (--allow-unscoped-agent)"
            );
            metrics.confinement_missing(agent_id, "landlock_scopes");
        }
        let masked_sockets = socket_scan.finish();
        for path in &masked_sockets {
            info!(agent_id, socket = %path.display(), "host socket writable by others: hidden from the agent");
        }
        let setup = child::ChildSetup {
            user,
            env: &vars,
            joins: applied.joins(),
            sandbox: &sandbox,
            masked_sockets: &masked_sockets,
        };
        child::spawn(&opts.command, guard.cgroup().dir().as_raw_fd(), &setup).map_err(|source| {
            let code = match source.kind() {
                std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                _ => EXIT_CANNOT_EXECUTE,
            };
            let command = opts
                .command
                .first()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default();
            RunError::Spawn {
                command,
                source,
                code,
            }
        })
    }
}

impl Launch<'_> {
    /// Refuses, before the start, a command the agent's user cannot execute
    /// (with the directory in the way and the fix); warns about arguments
    /// naming files it cannot read. A command not found is left to the
    /// start, which reports it.
    fn check_reach(
        &self,
        vars: &[(std::ffi::OsString, std::ffi::OsString)],
    ) -> Result<(), RunError> {
        let Some((program, args)) = self.opts.command.split_first() else {
            return Ok(());
        };
        let Ok(candidates) = child::resolve(program, vars) else {
            return Ok(());
        };
        // As execvp: the first candidate the user may execute wins.
        let mut problems = candidates
            .iter()
            .map(|c| reach::check_executable(c, self.user));
        if let Some(Err(first)) = problems.next()
            && !problems.any(|p| p.is_ok())
        {
            return Err(RunError::Spawn {
                command: program.to_string_lossy().into_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("the agent's user cannot execute {first}"),
                ),
                code: EXIT_CANNOT_EXECUTE,
            });
        }
        for problem in reach::unreadable_arguments(args, self.user) {
            warn!(
                agent_id = self.agent_id,
                file = %problem.file.display(),
                why = %problem.why,
                "an argument names a file the agent's user cannot read"
            );
        }
        Ok(())
    }
}

/// The agent's exit code, or 128 + the signal that killed it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => EXIT_SIDECAR_FAILED,
    }
}
