//! [`RunOptions`]: everything `run` needs, as the command line gives it.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf};

use super::{
    allow::AllowArg, env::EnvOptions, gateway::GatewayOptions, ship::AuditShipOptions,
    uid_pool::UidRange, user::UserSpec,
};
use crate::{
    dns::{BudgetLimits, RefusalMode, StaticHost},
    events::AuditOptions,
    kernel::limits::ResourceLimits,
};

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
    /// Mount a bpffs at `bpffs` when none is there.
    pub mount_bpffs: bool,
    /// State and lock directory.
    pub state_dir: PathBuf,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_listen: Option<SocketAddr>,
    /// The tool gateway (`--policy-dir`): tier policy, approvals,
    /// credentials.
    pub gateway: Option<GatewayOptions>,
    /// The audit trail (always on).
    pub audit: AuditOptions,
    /// Where the audit records are shipped (none by default).
    pub audit_ship: AuditShipOptions,
    /// The command and its arguments (none for `serve`).
    pub command: Vec<OsString>,
    /// Attach to this existing cgroup (a pod's) instead of creating one
    /// per agent id.
    pub cgroup: Option<PathBuf>,
    /// cgroups under `cgroup` left alone (the sidecar's own container).
    pub exempt_cgroups: Vec<PathBuf>,
    /// The pod `serve` governs (none for `run`).
    pub pod: Option<PodContext>,
    /// `--fleet-controls`: the kill switches every sidecar follows.
    pub fleet_controls: Option<PathBuf>,
}

/// The pod `serve` governs: who its agent is, and the instance id that
/// names this replica's pins, lock and state.
#[derive(Clone, Debug, Default)]
pub struct PodContext {
    /// Names the pins, lock and state (instead of the agent id).
    pub instance_id: String,
    /// The agent's owner (pod annotation).
    pub owner: Option<String>,
    /// The owner's team (pod annotation).
    pub team: Option<String>,
    /// What the agent is for (pod annotation).
    pub purpose: Option<String>,
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
    /// The explicit proxy's address [default: an ephemeral loopback port].
    pub explicit_listen: Option<SocketAddr>,
    /// How long proxied calls in flight may take to finish at shutdown
    /// (`serve --drain-grace`; zero for `run`, whose agent is gone).
    pub drain: std::time::Duration,
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
            explicit_listen: None,
            drain: std::time::Duration::ZERO,
        }
    }
}
