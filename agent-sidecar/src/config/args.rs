//! The flags of `run` (clap): the one definition the command line, the
//! config file and the environment variables are read against (see
//! [`super::keys`]).

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

use crate::{
    audit::{FsyncPolicy, ship::AuditShipArgs},
    credentials::SecretSpec,
    dns::{BudgetLimits, RefusalMode, StaticHost, parse_static_host, parse_upstream},
    events::AuditOptions,
    gateway::GatewayConfig,
    kernel::limits::{self, Limit, ResourceLimits},
    kernel::{pins::DEFAULT_STATE_DIR, preflight::DEFAULT_BPFFS},
    run::{
        AllowArg, AuditShipOptions, EnvOptions, EnvVar, GatewayOptions, NamesOptions, RunOptions,
        UidRange, UserSpec, env::parse_pass_env,
    },
};

/// Log format on stderr.
#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The logging flags, global to every subcommand.
#[derive(Args, Debug)]
pub struct LogArgs {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax) [default: RUST_LOG when set, else info].
    /// Given here or in AGENT_SIDECAR_LOG, it wins over RUST_LOG.
    #[arg(long, global = true, env = "AGENT_SIDECAR_LOG")]
    pub log: Option<String>,
}

impl LogArgs {
    /// The filter in force: `--log` (or `AGENT_SIDECAR_LOG`, or the
    /// config file's `log`), else `rust_log` (the `RUST_LOG` variable),
    /// else `info`.
    pub fn filter(&self, rust_log: Option<String>) -> String {
        self.log
            .clone()
            .or(rust_log.filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "info".to_string())
    }
}

/// The command line of `run` alone (with the global logging flags), as
/// the binary defines it: what the config keys are read from.
pub fn run_cli() -> clap::Command {
    let cli = LogArgs::augment_args(clap::Command::new("agent-sidecar"));
    cli.subcommand(RunArgs::augment_args(clap::Command::new("run")))
        .subcommand(ServeArgs::augment_args(clap::Command::new("serve")))
}

/// Where pins and state live (`run` and `teardown`).
#[derive(Args, Debug)]
pub struct PinArgs {
    /// bpffs mount point.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BPFFS)]
    pub bpffs: PathBuf,
    /// Directory for state files and owner locks.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

/// The flags `run` and `serve` share: policies, names, the gateway, pins,
/// the audit trail.
#[derive(Args, Debug)]
pub struct SidecarArgs {
    /// Config file (YAML) giving any of these flags as keys; flags win over
    /// AGENT_SIDECAR_* variables, which win over the file (docs/config.md).
    #[arg(long, value_name = "FILE", env = "AGENT_SIDECAR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Refuse to start when no bpffs is mounted at --bpffs, instead of
    /// mounting one there (mode 0700).
    #[arg(long)]
    pub no_mount_bpffs: bool,
    /// Policy file (YAML); repeatable, rules are merged.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Allow egress to TARGET, repeatable: IP:PORT, [IPv6]:PORT, CIDR (all ports), CIDR:PORT,
    /// or a name HOST[:PORT] (api.example.com:443, *.example.com for one more label,
    /// **.example.com for any depth) enforced by the sidecar's resolver and proxies.
    #[arg(long = "allow", value_name = "TARGET")]
    pub allow: Vec<AllowArg>,
    /// Upstream DNS server(s) of the agent's resolver (IP or IP:PORT) [default: /etc/resolv.conf].
    #[arg(long, value_name = "ADDR", value_parser = parse_upstream)]
    pub upstream_dns: Vec<SocketAddr>,
    /// Answer NAME with IP (A or AAAA, TTL 60) from the sidecar's resolver instead of asking
    /// upstream, when the allowlist allows NAME; operator-given, so the rebinding guard does not
    /// apply (loopback and private addresses are fine). Repeatable; also used for tool hosts.
    #[arg(long, value_name = "NAME=IP", value_parser = parse_static_host)]
    pub static_host: Vec<StaticHost>,
    /// How the resolver answers names that are not allowlisted.
    #[arg(long, value_name = "MODE", default_value = "nxdomain")]
    pub dns_refusal: RefusalMode,
    /// Queries the agent may have forwarded to the upstream resolvers per minute (answers from the
    /// cache and static hosts are free); past it, queries are refused locally, counted and
    /// logged once a minute.
    #[arg(long, value_name = "N", default_value_t = BudgetLimits::default().queries)]
    pub dns_budget_queries: u32,
    /// Distinct names among those forwarded queries per minute: bounds what a wildcard rule can
    /// carry to the zone's servers.
    #[arg(long, value_name = "N", default_value_t = BudgetLimits::default().names)]
    pub dns_budget_names: u32,
    /// TCP destination ports sent to the transparent proxy (comma-separated).
    #[arg(
        long,
        value_name = "PORTS",
        value_delimiter = ',',
        default_value = "80,443"
    )]
    pub intercept_ports: Vec<u16>,
    /// Agent id: names the cgroup, pins and log fields [run's default: <command>-<pid>; serve
    /// needs it: the pod's annotation through the downward API].
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,
    /// Serve Prometheus /metrics, /healthz and /readyz on this address (never reachable from the agent).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// The tool gateway's flags.
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Where pins and state live.
    #[command(flatten)]
    pub pins: PinArgs,
    /// The audit trail's flags.
    #[command(flatten)]
    pub audit: AuditArgs,
    /// Shipping the audit records to collectors.
    #[command(flatten)]
    pub audit_ship: AuditShipArgs,
    /// Fleet-controls file (YAML) of kill switches this sidecar follows, read again every
    /// 200 ms (docs/killswitch.md); it must exist and be valid at start.
    #[arg(long, value_name = "FILE")]
    pub fleet_controls: Option<PathBuf>,
}

/// The flags of `run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The flags `run` shares with `serve`.
    #[command(flatten)]
    pub sidecar: SidecarArgs,
    /// Do not set HTTP_PROXY/HTTPS_PROXY for the agent (the transparent proxy still applies).
    #[arg(long)]
    pub no_proxy_env: bool,
    /// Run COMMAND as UID[:GID] (or a user name); uid 0 is refused [default: a uid of its own
    /// from --uid-range when root, else the invoking user].
    #[arg(long, value_name = "UID[:GID]")]
    pub user: Option<UserSpec>,
    /// Range the agent's own uid (and gid) is allocated from when root and no --user is given;
    /// no two running agents share one, and no account or process of the host may use it.
    #[arg(
        long,
        value_name = "FIRST-LAST",
        default_value = "1879048192-1879113727"
    )]
    pub uid_range: UidRange,
    /// Set NAME=VALUE in the agent's environment (which otherwise holds only PATH, LANG,
    /// LANGUAGE, LC_*, TERM, TZ, HOME and what the sidecar sets). Repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<EnvVar>,
    /// Pass the operator's NAME to the agent when it is set; never the source of a --secret.
    /// Repeatable.
    #[arg(long = "pass-env", value_name = "NAME", value_parser = parse_pass_env)]
    pub pass_env: Vec<String>,
    /// Most tasks (processes and threads) the agent may have at once, or `max`.
    #[arg(long, value_name = "N", value_parser = limits::parse_count, default_value = "512")]
    pub pids_max: Limit,
    /// Most memory the agent may use (K, M, G, T suffixes), no swap on top, or `max`
    /// [default: half of the host's memory].
    #[arg(long, value_name = "BYTES", value_parser = limits::parse_bytes)]
    pub memory_max: Option<Limit>,
    /// Run even when the kernel cannot keep the agent away from abstract unix sockets and
    /// from signalling processes outside it (Landlock ABI 6, Linux >= 6.12); logged and counted.
    #[arg(long)]
    pub allow_unscoped_agent: bool,
    /// Leave the programs and maps pinned (and attached) when COMMAND exits.
    #[arg(long)]
    pub keep_pinned: bool,
    /// The agent's command and arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// The flags of `serve`: the sidecar of a Kubernetes pod.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The flags `serve` shares with `run`.
    #[command(flatten)]
    pub sidecar: SidecarArgs,
    /// UID of the pod (downward API: fieldRef metadata.uid): finds its cgroup.
    #[arg(long, value_name = "UID")]
    pub pod_uid: String,
    /// Name of the pod (downward API: fieldRef metadata.name): the instance id that names this
    /// replica's pins, lock and state.
    #[arg(long, value_name = "NAME")]
    pub pod_name: String,
    /// Namespace of the pod (downward API: fieldRef metadata.namespace): part of the instance
    /// id, so that same-named pods of two namespaces on one node never share pins.
    #[arg(long, value_name = "NS")]
    pub pod_namespace: Option<String>,
    /// Where the host's cgroup v2 tree is mounted (read-only is enough).
    #[arg(long, value_name = "DIR", default_value = crate::serve::pod::DEFAULT_HOST_CGROUPFS)]
    pub host_cgroupfs: PathBuf,
    /// The sidecar's own container cgroup, exempt from enforcement (absolute, or relative to
    /// the pod's cgroup) [default: from /proc/self/cgroup, or the container whose cgroup id is
    /// the inode of /sys/fs/cgroup in a private cgroup namespace].
    #[arg(long, value_name = "DIR")]
    pub sidecar_cgroup: Option<PathBuf>,
    /// The agent's owner (pod annotation through the downward API); recorded in the audit
    /// trail when the policy does not name one.
    #[arg(long, value_name = "NAME")]
    pub owner: Option<String>,
    /// The owner's team (pod annotation).
    #[arg(long, value_name = "NAME")]
    pub team: Option<String>,
    /// What the agent is for (pod annotation).
    #[arg(long, value_name = "TEXT")]
    pub purpose: Option<String>,
    /// The explicit HTTP(S) proxy's address: the port the agent containers' HTTP_PROXY names
    /// (the inject webhook sets both). A loopback address: the pod's containers share it.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15001")]
    pub proxy_listen: SocketAddr,
    /// On SIGTERM: how long in-flight calls may take to finish before the services stop.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = humantime::parse_duration)]
    pub drain_grace: Duration,
}

/// The tool gateway: tier policy, approvals, credentials.
#[derive(Args, Debug)]
#[command(next_help_heading = "Tool gateway")]
pub struct GatewayArgs {
    /// Tier policy set (a directory of YAML documents): enables the tool gateway. Every tool
    /// host it declares is allowed by name and terminated (TLS) so each call is decided.
    /// Needs --agent-id naming an agent document with an owner.
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
    /// Write every policy version put in force to DIR/<hash>/, so that
    /// `policy rollback` finds it after a restart and `policy diff` can
    /// compare it.
    #[arg(long, value_name = "DIR", requires = "policy_dir")]
    pub policy_archive: Option<PathBuf>,
    /// Deployment environment of the agent (selects the policy overlay).
    #[arg(long, value_name = "ENV", default_value = "prod")]
    pub environment: String,
    /// A credential the policy names: NAME=file:PATH (mode 0600) or NAME=env:VARIABLE. Repeatable.
    #[arg(long = "secret", value_name = "NAME=SOURCE", requires = "policy_dir")]
    pub secrets: Vec<SecretSpec>,
    /// Operator-supplied CA certificate (PEM) for the agent-facing leaves [default: generated].
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// Private key (PEM) of --ca-cert.
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Extra CA (PEM) trusted for upstream tool servers, https:// webhooks and https:// audit
    /// collectors, besides the system roots. Repeatable.
    #[arg(long = "upstream-ca", value_name = "FILE")]
    pub upstream_cas: Vec<PathBuf>,
    /// Serve the admin API (approvals, compensations, quarantine) here; never reachable from
    /// the agent.
    #[arg(long, value_name = "ADDR", requires = "admin_token_file")]
    pub admin_listen: Option<SocketAddr>,
    /// File (mode 0600) holding the admin API's bearer token.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Webhook (http:// or https://, verified like upstreams) of the agent's owner: tier-2 notices, tier-4 halts.
    #[arg(long, value_name = "URL")]
    pub owner_webhook: Option<String>,
    /// Webhook (http:// or https://, verified like upstreams) of the SOC: tier-4 halts, quarantines.
    #[arg(long, value_name = "URL")]
    pub soc_webhook: Option<String>,
    /// Send alerts (OCSF findings in RFC 5424 messages) to this syslog collector too, repeatable:
    /// udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT (RFC 5425, verified like upstreams);
    /// queued on disk until the collector takes them.
    #[arg(long, value_name = "URL")]
    pub syslog: Vec<crate::detect::SyslogTarget>,
    /// Directory of the behavioural baselines (a file per agent, kept across restarts;
    /// `none` keeps them in memory only).
    #[arg(long, value_name = "DIR", default_value = crate::detect::DEFAULT_BASELINE_DIR)]
    pub baseline_dir: PathBuf,
    /// Webhook (http:// or https://, verified like upstreams) of the approvers: tier-3 approvals pending and decided.
    #[arg(long, value_name = "URL")]
    pub approver_webhook: Option<String>,
    /// How long a tier-3 call waits for an approver before it is denied (e.g. 15m, 30s).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub approval_sla: std::time::Duration,
    /// Most tier-3 approvals the agent may have pending at once; more are refused
    /// (429 too_many_pending_approvals) until some are decided or expire.
    #[arg(long, value_name = "N", default_value_t = crate::approvals::DEFAULT_MAX_PENDING_PER_AGENT, value_parser = parse_positive)]
    pub max_pending_approvals: usize,
    /// Largest request body of an inspected tool call; larger ones are refused (413).
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Key (64 hex digits, mode 0600) of the keyed hashes the policy's `redact: hash` fields
    /// become in records, the approvals journal, webhooks and logs; give every instance of a
    /// deployment the same file so hashed values correlate [default: STATE_DIR/redaction.key,
    /// generated when absent].
    #[arg(long, value_name = "FILE", requires = "policy_dir")]
    pub redaction_key: Option<PathBuf>,
    /// Signing secret (whsec_<base64>, mode 0600) of the approver, owner and SOC webhooks'
    /// Standard Webhooks signatures [default: STATE_DIR/webhook.secret, generated when absent].
    #[arg(long, value_name = "FILE", requires = "policy_dir")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Redis (redis://HOST:PORT/DB) holding the quota counters shared by every sidecar of the
    /// fleet; without it, quotas are counted by this sidecar alone (see docs/quotas.md).
    #[arg(long, value_name = "URL", requires = "policy_dir")]
    pub quota_redis: Option<String>,
    /// Approver directory (YAML, mode 0600): with it, approving or denying needs the approver's own token.
    #[arg(long, value_name = "FILE", requires = "admin_token_file")]
    pub approvers_file: Option<PathBuf>,
    /// A candidate tier policy set decided beside the active one on live traffic, never
    /// enforced: each decision that would differ is counted and recorded (see docs/shadow.md).
    #[arg(long, value_name = "DIR", requires = "policy_dir")]
    pub shadow_policies: Option<PathBuf>,
    /// Policy fixtures (a file or a directory of them, as `policy test` takes) run against the
    /// set in force at every load and every 5 minutes; results as metrics (see docs/policy.md).
    #[arg(long, value_name = "PATH", requires = "policy_dir")]
    pub policy_fixtures: Option<PathBuf>,
    /// This agent's fleet identity certificate (`fleet-ca issue`) for calls between agents' sidecars; refused at start when expired or not issued by --fleet-ca-cert.
    #[arg(long, value_name = "FILE", requires_all = ["agent_identity_key", "fleet_ca_cert", "policy_dir"])]
    pub agent_identity_cert: Option<PathBuf>,
    /// Private key (PEM, mode 0600) of --agent-identity-cert.
    #[arg(long, value_name = "FILE", requires = "agent_identity_cert")]
    pub agent_identity_key: Option<PathBuf>,
    /// The fleet CA certificate (`fleet-ca init`) that peers' identities must chain to.
    #[arg(long, value_name = "FILE", requires = "agent_identity_cert")]
    pub fleet_ca_cert: Option<PathBuf>,
    /// Address of the mutual-TLS endpoint where other agents' sidecars call this agent with a
    /// delegation token (see docs/delegation.md).
    #[arg(long, value_name = "ADDR", requires_all = ["agent_identity_cert", "a2a_forward"])]
    pub a2a_listen: Option<std::net::SocketAddr>,
    /// The agent's own HTTP endpoint (http://127.0.0.1:PORT) that admitted calls from other
    /// agents are forwarded to.
    #[arg(long, value_name = "URL", requires = "a2a_listen", value_parser = parse_loopback_url)]
    pub a2a_forward: Option<hyper::Uri>,
}

/// `--a2a-forward`: an `http://` URL on a loopback address.
fn parse_loopback_url(s: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    let host_ok = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    if uri.scheme_str() != Some("http") || !host_ok || uri.port_u16().is_none() {
        return Err(format!(
            "`{s}`: give http://127.0.0.1:PORT (the agent's own endpoint on loopback, in the pod or on this host)"
        ));
    }
    Ok(uri)
}

/// The audit trail: one signed, tamper-evident record per action.
#[derive(Args, Debug)]
#[command(next_help_heading = "Audit trail")]
pub struct AuditArgs {
    /// Directory of the agent's audit log [default: STATE_DIR/audit/AGENT_ID].
    #[arg(long, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,
    /// How soon records are fsynced: `always` or a window such as `10ms`; a tier >= 2 call's
    /// record is always fsynced before the call is forwarded, a tier-1 record written.
    #[arg(long, value_name = "WINDOW", default_value = "10ms", value_parser = parse_fsync)]
    pub audit_fsync: FsyncPolicy,
    /// How often a checkpoint of the log is signed (and at shutdown).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub audit_checkpoint_interval: Duration,
    /// The checkpoints' Ed25519 signing key (as `audit keygen` writes it); generated, mode 0600,
    /// when absent [default: STATE_DIR/audit-keys/AGENT_ID.key]. The verifier key is written
    /// to the log directory as log.vkey.
    #[arg(long, value_name = "FILE")]
    pub audit_key: Option<PathBuf>,
    /// Also append every signed checkpoint to FILE (a witness outside the host: another
    /// disk, a network mount); repeatable.
    #[arg(long, value_name = "FILE")]
    pub audit_witness_file: Vec<PathBuf>,
    /// Let actions through when their audit record cannot be written (disk full...), counted
    /// in agent_sidecar_audit_fail_open_total and logged; by default they are refused.
    #[arg(long)]
    pub audit_fail_open: bool,
}

impl AuditArgs {
    /// The audit trail's options.
    pub fn options(self) -> AuditOptions {
        AuditOptions {
            dir: self.audit_dir,
            fsync: self.audit_fsync,
            checkpoint_interval: self.audit_checkpoint_interval,
            key_file: self.audit_key,
            witness_files: self.audit_witness_file,
            fail_open: self.audit_fail_open,
        }
    }
}

/// An fsync window: `always` or a duration.
pub fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    FsyncPolicy::parse(s).ok_or_else(|| {
        format!("`{s}` is not an fsync window: give `always` or a duration such as 10ms, 1s")
    })
}

/// A whole number above 0.
pub fn parse_positive(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}` is not a positive whole number"))
}

/// A duration above 0 (`15m`, `1h30m`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::policy::gateway::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!("`{s}` is not a duration: write numbers with units such as s, m, h, d (e.g. 15m, 1h30m)")
        })
}

impl GatewayArgs {
    /// The gateway's options, when `--policy-dir` enables it.
    pub fn options(self) -> Option<GatewayOptions> {
        let policy_dir = self.policy_dir?;
        let mut config = GatewayConfig {
            approval_sla: self.approval_sla,
            max_pending_approvals: self.max_pending_approvals,
            ..GatewayConfig::default()
        };
        config.limits.max_body_bytes = self.max_body_bytes;
        config.quota_redis = self.quota_redis;
        Some(GatewayOptions {
            policy_dir,
            policy_archive: self.policy_archive,
            environment: self.environment,
            secrets: self.secrets,
            ca: self.ca_cert.zip(self.ca_key),
            upstream_cas: self.upstream_cas,
            admin_listen: self.admin_listen,
            admin_token_file: self.admin_token_file,
            owner_webhook: self.owner_webhook,
            soc_webhook: self.soc_webhook,
            approver_webhook: self.approver_webhook,
            redaction_key: self.redaction_key,
            webhook_secret_file: self.webhook_secret_file,
            baseline_dir: (self.baseline_dir.as_os_str() != "none").then_some(self.baseline_dir),
            syslog: self.syslog,
            config,
            approvers_file: self.approvers_file,
            shadow_policies: self.shadow_policies,
            policy_fixtures: self.policy_fixtures,
            agent_identity: crate::delegation::config::IdentityConfig::from_flags(
                self.agent_identity_cert,
                self.agent_identity_key,
                self.fleet_ca_cert,
            ),
            a2a_inbound: self
                .a2a_listen
                .zip(self.a2a_forward)
                .map(|(listen, forward)| crate::run::a2a::InboundOptions { listen, forward }),
        })
    }
}

impl SidecarArgs {
    /// What `run` and `serve` share; the agent-process fields at their
    /// defaults (no command, no proxy variables).
    fn into_options(self) -> RunOptions {
        let args = self;
        let audit_ship = AuditShipOptions {
            flags: args.audit_ship,
            cas: args.gateway.upstream_cas.clone(),
        };
        RunOptions {
            policies: args.policies,
            allow: args.allow,
            names: NamesOptions {
                upstream_dns: args.upstream_dns,
                static_hosts: args.static_host,
                refusal: args.dns_refusal,
                budget: BudgetLimits {
                    queries: args.dns_budget_queries,
                    names: args.dns_budget_names,
                },
                intercept_ports: args.intercept_ports,
                proxy_env: false,
                explicit_listen: None,
                drain: Duration::ZERO,
            },
            agent_id: args.agent_id,
            user: None,
            uid_range: UidRange::default(),
            env: EnvOptions::default(),
            limits: ResourceLimits::default(),
            allow_unscoped: false,
            keep_pinned: false,
            bpffs: args.pins.bpffs,
            mount_bpffs: !args.no_mount_bpffs,
            state_dir: args.pins.state_dir,
            metrics_listen: args.metrics_listen,
            gateway: args.gateway.options(),
            audit: args.audit.options(),
            audit_ship,
            command: Vec::new(),
            cgroup: None,
            exempt_cgroups: Vec::new(),
            pod: None,
            fleet_controls: args.fleet_controls,
        }
    }
}

impl ServeArgs {
    /// What `serve` needs, from the parsed flags.
    pub fn into_options(self) -> crate::serve::ServeOptions {
        let mut run = self.sidecar.into_options();
        run.names.explicit_listen = Some(self.proxy_listen);
        run.names.drain = self.drain_grace;
        crate::serve::ServeOptions {
            run,
            pod_uid: self.pod_uid,
            pod_name: self.pod_name,
            pod_namespace: self.pod_namespace,
            host_cgroupfs: self.host_cgroupfs,
            sidecar_cgroup: self.sidecar_cgroup,
            owner: self.owner,
            team: self.team,
            purpose: self.purpose,
            drain_grace: self.drain_grace,
        }
    }
}

impl RunArgs {
    /// What `run` needs, from the parsed flags.
    pub fn into_options(self) -> RunOptions {
        let mut opts = self.sidecar.into_options();
        opts.names.proxy_env = !self.no_proxy_env;
        opts.user = self.user;
        opts.uid_range = self.uid_range;
        opts.env = EnvOptions {
            set: self.env,
            pass: self.pass_env,
        };
        opts.limits = ResourceLimits {
            pids_max: self.pids_max,
            memory_max: self
                .memory_max
                .unwrap_or_else(|| ResourceLimits::default().memory_max),
        };
        opts.allow_unscoped = self.allow_unscoped_agent;
        opts.keep_pinned = self.keep_pinned;
        opts.command = self.command;
        opts
    }
}
