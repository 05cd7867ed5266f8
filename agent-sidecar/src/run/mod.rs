//! `agent-sidecar run`: wraps one command in a governed cgroup.
//!
//! 1. build the allowlist from `--policy` files and `--allow` flags;
//! 2. [`Enforcer::start`]: cgroup, programs, maps, pins;
//! 3. start the command inside the cgroup as a user of its own
//!    ([`uid_pool`], [`user`]), with resource limits
//!    ([`crate::kernel::limits`]), a minimal environment ([`env`]) and the
//!    [`sandbox`] ([`child`]), forward signals ([`signals`]), log and count
//!    deny events;
//! 4. when the command exits, kill what it left in the cgroup, tear down
//!    (unless `--keep-pinned`) and exit with the command's exit code.

pub mod allow;
pub mod child;
pub mod env;
mod gateway;
pub mod names;
pub mod private_listeners;
mod resolve;
pub mod sandbox;
pub mod signals;
pub mod uid_pool;
pub mod unix_mask;
pub mod user;

use std::{
    ffi::OsString, net::SocketAddr, os::fd::AsRawFd, path::PathBuf, sync::Arc, time::Duration,
};

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::{
    admin,
    dns::{BudgetLimits, RefusalMode, StaticHost},
    egress::{Allowlist, EgressRule, NameAllowlist, Protocols, RuleSource},
    events::{ActionSink, EventBus, LogLines},
    kernel::{
        Enforcer, EnforcerConfig, KernelError, events as kernel_events,
        limits::{self, LimitsError, ResourceLimits},
    },
    metrics::Metrics,
    policy::{PolicyError, load_policy_files},
};
pub use allow::AllowArg;
pub use env::{EnvError, EnvOptions, EnvVar};
pub use gateway::GatewayOptions;
use names::{NameServices, NamesConfig};
use private_listeners::PrivateListener;
pub use uid_pool::{UidPoolError, UidRange};
pub use user::{UserError, UserSpec};

/// Raises the soft limit of open descriptors to the hard limit: the
/// resolver, proxies and gateway of one agent hold one descriptor per
/// connection, and the common soft limit of 1,024 would let an agent's
/// connection flood stall its own calls (`accept` failing with `EMFILE`).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => info!(from = soft, to = hard, "raised the open-files limit"),
            Err(e) => warn!(error = %e, soft, hard, "cannot raise the open-files limit"),
        },
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot read the open-files limit"),
    }
}

/// Exit code when `run` itself fails before the command starts.
pub const EXIT_SIDECAR_FAILED: i32 = 125;
/// Exit code when the command exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit code when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Everything `run` needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Policy files.
    pub policies: Vec<PathBuf>,
    /// `--allow` targets: addresses and names.
    pub allow: Vec<AllowArg>,
    /// Name-based egress settings (used when a name rule is present).
    pub names: NamesOptions,
    /// Agent id (default: `<command name>-<pid>`).
    pub agent_id: Option<String>,
    /// Who the command runs as (default: a uid of its own from `uid_range`
    /// when invoked as root, else the invoker).
    pub user: Option<UserSpec>,
    /// Where agent uids are allocated from.
    pub uid_range: UidRange,
    /// What the operator adds to the agent's minimal environment.
    pub env: EnvOptions,
    /// Tasks and memory of the agent's cgroup.
    pub limits: ResourceLimits,
    /// Run even when the kernel cannot scope the agent's abstract unix
    /// sockets and signals (counted and logged).
    pub allow_unscoped: bool,
    /// Leave programs and maps pinned after the command exits.
    pub keep_pinned: bool,
    /// bpffs mount point.
    pub bpffs: PathBuf,
    /// State and lock directory.
    pub state_dir: PathBuf,
    /// Serve `/metrics` and `/healthz` here.
    pub metrics_listen: Option<SocketAddr>,
    /// The tool gateway (`--policy-dir`): tier policy, approvals,
    /// credentials.
    pub gateway: Option<GatewayOptions>,
    /// The command and its arguments.
    pub command: Vec<OsString>,
}

/// Name-based egress settings of `run`.
#[derive(Clone, Debug)]
pub struct NamesOptions {
    /// Upstream resolvers (default: the nameservers of `/etc/resolv.conf`).
    pub upstream_dns: Vec<SocketAddr>,
    /// Names the resolver answers from this operator-given table instead of
    /// asking upstream (`--static-host NAME=IP`), when the allowlist allows
    /// them; not subject to the rebinding guard.
    pub static_hosts: Vec<StaticHost>,
    /// How names that are not allowlisted are answered.
    pub refusal: RefusalMode,
    /// The agent's DNS budget per minute.
    pub budget: BudgetLimits,
    /// TCP destination ports sent to the transparent proxy.
    pub intercept_ports: Vec<u16>,
    /// Whether to set `HTTP_PROXY`/`HTTPS_PROXY` for the agent.
    pub proxy_env: bool,
}

impl Default for NamesOptions {
    fn default() -> Self {
        Self {
            upstream_dns: Vec::new(),
            static_hosts: Vec::new(),
            refusal: RefusalMode::NxDomain,
            budget: BudgetLimits::default(),
            intercept_ports: vec![80, 443],
            proxy_env: true,
        }
    }
}

/// Why `run` could not start or finish the command.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A policy file is unusable.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Kernel enforcement failed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The command could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// The error.
        source: std::io::Error,
        /// Exit code to report.
        code: i32,
    },
    /// Other I/O failure.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    /// The name-based egress services could not start.
    #[error("name-based egress: {0}")]
    Names(String),
    /// The tool gateway could not start.
    #[error("tool gateway: {0}")]
    Gateway(String),
    /// A rule would let the agent reach one of the sidecar's own listeners.
    #[error("{0}")]
    PrivateListener(String),
    /// The agent's environment is refused.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// No uid could be allocated for the agent.
    #[error(transparent)]
    Uid(#[from] UidPoolError),
    /// The agent's resource limits could not be set.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// The agent's seccomp filter or Landlock scopes could not be prepared.
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
}

impl RunError {
    /// The exit code `run` reports for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Spawn { code, .. } => *code,
            _ => EXIT_SIDECAR_FAILED,
        }
    }
}

/// Merges policy files and `--allow` flags into the address allowlist
/// (kernel) and the name allowlist (resolver and proxies). A name rule that
/// covers a port the transparent proxy does not take learns the addresses
/// its names resolve to.
pub fn build_allowlist(
    policies: &[PathBuf],
    allow: &[AllowArg],
    intercept_ports: &[u16],
) -> Result<(Allowlist, NameAllowlist), PolicyError> {
    let (mut list, mut names) = load_policy_files(policies)?;
    for (i, arg) in allow.iter().enumerate() {
        match arg {
            AllowArg::Address(target) => list.push(EgressRule {
                target: *target,
                protocols: Protocols::Any,
                source: RuleSource::Flag(i + 1),
            }),
            AllowArg::Name(rule) => {
                let mut rule = rule.clone();
                rule.source = Some(RuleSource::Flag(i + 1));
                names.push(rule);
            }
        }
    }
    // A name rule that covers a port the transparent proxy does not take
    // learns the addresses its names resolve to.
    let names = names
        .rules()
        .iter()
        .cloned()
        .map(|mut rule| {
            rule.learn = learns(&rule, intercept_ports);
            rule
        })
        .collect();
    Ok((list, names))
}

/// Whether a name rule covers a port the transparent proxy does not take:
/// then the addresses its names resolve to are allowed in the kernel.
fn learns(rule: &crate::egress::NameRule, intercept_ports: &[u16]) -> bool {
    match &rule.ports {
        None => true,
        Some(ports) => ports.iter().any(|p| !intercept_ports.contains(p)),
    }
}

fn default_agent_id(command: &[OsString]) -> String {
    let name = command
        .first()
        .map(|c| {
            std::path::Path::new(c)
                .file_name()
                .unwrap_or(c)
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let name = name.trim_start_matches(['-', '_']);
    let name = if name.is_empty() { "agent" } else { name };
    format!("{name}-{}", std::process::id())
}

/// Runs the command under enforcement and returns its exit code.
pub async fn run(opts: RunOptions) -> Result<i32, RunError> {
    // The sidecar holds secrets: no core dump of it, and its /proc files
    // stay root's.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        warn!(error = %e, "cannot make the sidecar non-dumpable");
    }
    raise_fd_limit();
    let agent_id = match (&opts.agent_id, &opts.gateway) {
        (Some(id), _) => id.clone(),
        (None, Some(_)) => {
            return Err(RunError::Gateway(
                "--policy-dir needs --agent-id: the id of the agent's document in the policy set"
                    .into(),
            ));
        }
        (None, None) => default_agent_id(&opts.command),
    };
    let metrics = Arc::new(Metrics::new());
    let gateway_policy = opts
        .gateway
        .as_ref()
        .map(|g| gateway::load_policy(g, &agent_id, &metrics))
        .transpose()?;
    let mut intercept_ports = opts.names.intercept_ports.clone();
    if let Some(gp) = &gateway_policy {
        for &p in &gp.ports {
            if !intercept_ports.contains(&p) {
                intercept_ports.push(p);
            }
        }
    }
    let (mut allowlist, mut names) =
        build_allowlist(&opts.policies, &opts.allow, &intercept_ports)?;
    if let Some(gp) = &gateway_policy {
        for rule in gp.egress.rules() {
            allowlist.push(rule.clone());
        }
        for rule in gp.names.rules() {
            let mut rule = rule.clone();
            rule.learn = learns(&rule, &intercept_ports);
            names.push(rule);
        }
    }
    let admin_addr = opts.gateway.as_ref().and_then(|g| g.admin_listen);
    let secret_sources = secret_sources(&opts);
    // Refuse a secret's source before anything is set up.
    env::agent_env(&env::EnvInputs {
        operator: &[],
        options: &opts.env,
        secret_sources: &secret_sources,
        sidecar: &[],
        home: std::path::Path::new(env::NO_HOME),
    })?;
    let (user, uid_lease) = match opts.user {
        Some(u) => (u, None),
        None if nix::unistd::geteuid().is_root() => {
            let lease =
                uid_pool::allocate(std::path::Path::new(uid_pool::LOCK_DIR), &opts.uid_range)?;
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
        dynamic = uid_lease.is_some(),
        "agent user"
    );
    if user.uid == 0 {
        return Err(RunError::Io(
            "refusing to run the agent as uid 0",
            std::io::Error::other(UserError::Root("0".into()).to_string()),
        ));
    }
    for rule in allowlist.rules() {
        info!(agent_id = %agent_id, target = %rule.target, protocols = ?rule.protocols, source = %rule.source, "egress allow rule");
    }
    // Bind before anything is attached, so a busy address fails cleanly.
    let admin_listener = match opts.metrics_listen {
        Some(addr) => Some(
            admin::bind(addr)
                .await
                .map_err(|e| RunError::Io("binding --metrics-listen", e))?,
        ),
        None => None,
    };
    let gateway_admin = match admin_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| RunError::Io("binding --admin-listen", e))?,
        ),
        None => None,
    };
    let mut private = Vec::new();
    for (listener, what, flag) in [
        (admin_listener.as_ref(), "metrics", "--metrics-listen"),
        (gateway_admin.as_ref(), "admin API", "--admin-listen"),
    ] {
        if let Some(l) = listener {
            let addr = l
                .local_addr()
                .map_err(|e| RunError::Io("reading a listener address", e))?;
            private.push(PrivateListener { what, addr, flag });
        }
    }
    private_listeners::check(&private, &allowlist, &names, &opts.names.static_hosts)?;
    let config = EnforcerConfig {
        agent_id: agent_id.clone(),
        bpffs: opts.bpffs.clone(),
        state_dir: opts.state_dir.clone(),
        cgroup: None,
        private_listeners: private.iter().map(|l| l.addr).collect(),
    };
    let mut enforcer = Enforcer::start(&config, &allowlist)?;
    metrics.set_allowlist_entries(&agent_id, enforcer.allowlist_entries());

    // Every action event (kernel refusals, DNS and proxy decisions, tool
    // calls) goes through one bus: the log and the metrics consume it, the
    // gateway's webhooks join when the gateway starts.
    let events = EventBus::new(vec![
        Arc::new(LogLines),
        metrics.clone() as Arc<dyn ActionSink>,
    ]);
    // Deny events -> the bus, until told to drain and stop.
    let (stop_events, stopped) = oneshot::channel::<()>();
    let events_task = enforcer.take_events().map(|ring| {
        let events = events.clone();
        let agent_id = agent_id.clone();
        tokio::spawn(async move {
            let mut sink = |r: kernel_events::DenyRecord| events.kernel_deny(&agent_id, &r);
            kernel_events::consume(ring, &mut sink, stopped).await;
        })
    });
    let logger_task = enforcer
        .take_logger()
        .map(|logger| tokio::spawn(flush_ebpf_logs(logger)));

    let enforcer = Arc::new(std::sync::Mutex::new(enforcer));
    let admin_task = match admin_listener {
        Some(listener) => {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "serving /metrics and /healthz");
            }
            let (enf, m, id) = (enforcer.clone(), metrics.clone(), agent_id.clone());
            let refresh: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                let counters = enf.lock().expect("enforcer lock").counters();
                m.observe_kernel(&id, counters);
            });
            Some(tokio::spawn(admin::serve(
                listener,
                admin::Admin::ops(metrics.clone(), refresh),
            )))
        }
        None => None,
    };

    let services = if names.is_empty() {
        None
    } else {
        for rule in names.rules() {
            info!(agent_id = %agent_id, rule = %rule, learn = rule.learn, "egress name rule");
        }
        let upstreams = if opts.names.upstream_dns.is_empty() {
            crate::dns::upstreams_from_resolv_conf(std::path::Path::new("/etc/resolv.conf"))
                .map_err(|e| RunError::Names(format!("{e} (or give --upstream-dns)")))?
        } else {
            opts.names.upstream_dns.clone()
        };
        let config = NamesConfig {
            upstreams,
            static_hosts: opts.names.static_hosts.iter().cloned().collect(),
            refusal: opts.names.refusal,
            budget: opts.names.budget,
            intercept_ports: intercept_ports.clone(),
            grace: Duration::from_secs(60),
            idle: Duration::from_secs(120),
            proxy_env: opts.names.proxy_env,
            private_listeners: private.clone(),
        };
        let gateway = match (opts.gateway.clone(), gateway_policy) {
            (Some(options), Some(policy)) => Some(gateway::GatewayStart {
                options,
                policy,
                agent_dir: opts.state_dir.join("agents").join(&agent_id),
                admin_listener: gateway_admin,
                metrics: metrics.clone(),
                events: events.clone(),
            }),
            _ => None,
        };
        Some(
            NameServices::start(
                &agent_id,
                names,
                &config,
                enforcer.clone(),
                &events,
                gateway,
            )
            .await?,
        )
    };
    let mut sidecar_env = vec![("AGENT_SIDECAR_AGENT_ID".to_string(), agent_id.clone())];
    if let Some(services) = &services {
        sidecar_env.extend(services.env().iter().cloned());
    }
    let mut applied_limits = None;
    let spawned = start_agent(
        &opts,
        &agent_id,
        &enforcer,
        &metrics,
        user,
        &sidecar_env,
        &secret_sources,
        &mut applied_limits,
    );
    let code = match spawned {
        Ok(child) => {
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
        Err(e) => {
            error!(agent_id = %agent_id, error = %e, "cannot start the agent");
            Err(e)
        }
    };
    if let Some(services) = services {
        services.shutdown().await;
    }
    for task in [admin_task, logger_task].into_iter().flatten() {
        task.abort();
        let _ = task.await;
    }
    if let Ok(code) = &code {
        info!(agent_id = %agent_id, exit_code = code, "agent exited");
    }
    let finished = finish(
        enforcer,
        &metrics,
        &agent_id,
        opts.keep_pinned,
        stop_events,
        events_task,
    )
    .await;
    if let Some(applied) = applied_limits {
        applied.remove(Duration::from_secs(2));
    }
    if let Some(lease) = uid_lease {
        info!(agent_id = %agent_id, uid = lease.user().uid, "agent user released");
    }
    finished?;
    code
}

/// `(secret name, variable)` of every secret read from an environment
/// variable.
fn secret_sources(opts: &RunOptions) -> Vec<(String, String)> {
    use crate::credentials::SecretSource;
    opts.gateway
        .iter()
        .flat_map(|g| &g.secrets)
        .filter_map(|s| match &s.source {
            SecretSource::Env(var) => Some((s.name.clone(), var.clone())),
            SecretSource::File(_) => None,
        })
        .collect()
}

/// Sets the agent's resource limits, builds its environment and sandbox and
/// starts it.
#[allow(clippy::too_many_arguments)]
fn start_agent(
    opts: &RunOptions,
    agent_id: &str,
    enforcer: &std::sync::Mutex<Enforcer>,
    metrics: &Metrics,
    user: UserSpec,
    sidecar_env: &[(String, String)],
    secret_sources: &[(String, String)],
    applied_limits: &mut Option<limits::AppliedLimits>,
) -> Result<child::AgentProcess, RunError> {
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
        secret_sources,
        sidecar: sidecar_env,
        home: &home,
    })?;
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
    let masked_sockets = unix_mask::foreign_writable_sockets(user.uid);
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

/// Drains the last events, then tears down (or keeps) the pinned state.
async fn finish(
    enforcer: Arc<std::sync::Mutex<Enforcer>>,
    metrics: &Metrics,
    agent_id: &str,
    keep_pinned: bool,
    stop_events: oneshot::Sender<()>,
    events_task: Option<tokio::task::JoinHandle<()>>,
) -> Result<(), RunError> {
    let _ = stop_events.send(());
    if let Some(t) = events_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let counters = enforcer.lock().expect("enforcer lock").counters();
    metrics.observe_kernel(agent_id, counters);
    if counters.events_lost > 0 {
        warn!(
            agent_id,
            lost = counters.events_lost,
            "deny events were lost: the ring buffer was full"
        );
    }
    info!(
        agent_id,
        allowed = counters.allowed,
        denied = counters.denied,
        skb_dropped = counters.skb_dropped,
        "kernel enforcement summary"
    );
    // Helpers hold the enforcer weakly and upgrade it for a moment (a
    // learned address, a quarantine): wait for them briefly.
    let mut enforcer = enforcer;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let enforcer = loop {
        match Arc::try_unwrap(enforcer) {
            Ok(m) => break m.into_inner().expect("enforcer lock"),
            Err(shared) if std::time::Instant::now() < deadline => {
                enforcer = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => {
                warn!(agent_id, "enforcement still referenced; leaving it pinned");
                return Ok(());
            }
        }
    };
    if keep_pinned {
        let dir = enforcer.layout().agent_dir();
        info!(agent_id, pins = %dir.display(), "keeping pinned enforcement; remove it with `agent-sidecar teardown --agent-id {agent_id}`");
        drop(enforcer);
        return Ok(());
    }
    enforcer.teardown()?;
    info!(agent_id, "kernel enforcement removed");
    Ok(())
}

async fn flush_ebpf_logs(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    let Ok(mut fd) = kernel_events::watch(logger) else {
        return;
    };
    while let Ok(mut guard) = fd.readable_mut().await {
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => EXIT_SIDECAR_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_agent_ids_are_valid() {
        for cmd in ["/usr/bin/python3", "./my agent.sh", "--weird", ""] {
            let id = default_agent_id(&[OsString::from(cmd)]);
            crate::kernel::pins::validate_agent_id(&id).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        }
    }
}
