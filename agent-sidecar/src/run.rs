//! `agent-sidecar run`: wraps one command in a governed cgroup. [`run`]
//! goes through these phases, in order:
//!
//! 1. **plan** (`egress_plan`): the allowlist from `--policy` files,
//!    `--allow` flags and the gateway's tool hosts;
//!    then **the audit trail** ([`audit`](mod@audit)): the agent's log opened (a
//!    `sidecar_started` record), fed by the action event bus, and shipped
//!    to the collectors given ([`ship`]);
//! 2. **the agent's user** ([`uid_pool`], [`user`]), and its secrets'
//!    sources checked;
//! 3. **operator listeners** (`listeners`): bound before anything is
//!    attached, and kept out of the agent's reach ([`private_listeners`]);
//! 4. **enforcement** (`enforcement`): cgroup, programs, maps, pins
//!    ([`Enforcer::start`](crate::kernel::Enforcer::start)), and the action
//!    event bus fed by the kernel's deny events;
//! 5. **name services** ([`names`], `gateway`): resolver, proxies and the
//!    tool gateway, when a name rule exists;
//! 6. **the agent** (`agent`): resource limits
//!    ([`crate::kernel::limits`]), a minimal environment ([`env`](mod@env)) and the
//!    [`sandbox`] ([`child`]); signals forwarded ([`signals`]) until it
//!    exits;
//! 7. **shutdown**: services stopped, the last events drained, what the
//!    agent left in the cgroup killed, the state torn down (unless
//!    `--keep-pinned`), the audit log closed (a `sidecar_stopped` record
//!    and a last signed checkpoint), then its last records shipped
//!    ([`ship`]); `run` exits with the command's exit code.

pub mod a2a;
mod agent;
pub mod allow;
mod audit;
pub mod child;
mod detection;
mod egress_plan;
mod enforcement;
pub mod env;
mod error;
mod gateway;
mod grants;
mod killswitch;
mod listeners;
pub mod names;
mod options;
mod policy_tests;
pub mod private_listeners;
mod reach;
mod resolve;
pub mod sandbox;
mod ship;
pub mod signals;
pub mod uid_pool;
pub mod unix_mask;
pub mod user;

use std::{ffi::OsString, sync::Arc, time::Duration};

use tracing::{info, warn};

use crate::{
    events::{EventBus, LogLines, PolicyEvents},
    fleet::FleetIdentity,
    metrics::{Check, Metrics},
};
pub use allow::AllowArg;
pub(crate) use egress_plan::EgressPlan;
use enforcement::Enforcement;
pub use env::{EnvError, EnvOptions, EnvVar};
pub use error::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_SIDECAR_FAILED, RunError};
pub use gateway::GatewayOptions;
use listeners::OperatorListeners;
use names::{NameServices, NamesConfig};
pub use options::{NamesOptions, PodContext, RunOptions};
use private_listeners::PrivateListener;
pub use ship::AuditShipOptions;
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

/// What `run` and `serve` open before anything is attached: the metrics,
/// the action event bus, the egress plan (policies loaded) and the audit
/// trail with its shipper.
pub(crate) struct Opened {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) events: EventBus,
    pub(crate) trail: crate::events::AuditTrail,
    shipper: Option<crate::audit::ship::ShipperHandle>,
}

impl Opened {
    /// Plans the allowlist (policies loaded: `PoliciesLoaded` ready) and
    /// opens the audit trail and its shipping.
    pub(crate) fn open(opts: &RunOptions, agent_id: &str) -> Result<(Self, EgressPlan), RunError> {
        let metrics = Arc::new(Metrics::for_agent(agent_id));
        let events = EventBus::new(vec![Arc::new(LogLines), metrics.clone()]);
        let observer: Arc<dyn crate::policy::reload::ReloadObserver> = Arc::new(PolicyEvents {
            bus: events.clone(),
            agent_id: agent_id.to_string(),
            next: Some(metrics.clone()),
        });
        let plan = EgressPlan::build(opts, agent_id, &observer)?;
        metrics.readiness().set(Check::PoliciesLoaded, true);
        let trail = audit::open(opts, agent_id, &plan, &metrics, &events)?;
        match ship::start(&opts.audit_ship, &trail, audit::instance(), &metrics) {
            Ok(shipper) => Ok((
                Opened {
                    metrics,
                    events,
                    trail,
                    shipper,
                },
                plan,
            )),
            Err(e) => {
                let _ = trail.close(serde_json::json!({"error": e.to_string()}));
                Err(e)
            }
        }
    }

    /// Closes the audit trail with the outcome (a `sidecar_stopped`
    /// record and a last signed checkpoint), then ships its last records.
    pub(crate) async fn close(self, code: &Result<i32, RunError>) {
        let stop = match code {
            Ok(c) => serde_json::json!({"exit_code": c}),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        };
        if let Err(e) = self.trail.close(stop) {
            warn!(error = %e, "the audit log did not close cleanly; `agent-sidecar audit verify` its directory");
        }
        // After the close: the last records are shipped too.
        if let Some(shipper) = self.shipper {
            ship::stop(shipper).await;
        }
    }
}

/// Runs the command under enforcement and returns its exit code.
pub async fn run(opts: RunOptions) -> Result<i32, RunError> {
    harden_sidecar();
    let agent_id = agent_id(&opts)?;
    let (opened, plan) = Opened::open(&opts, &agent_id)?;
    let code = governed(&opts, &agent_id, plan, &opened).await;
    opened.close(&code).await;
    code
}

/// The sidecar's enforcement and services, up: what `run` and `serve`
/// share between the audit trail's opening and its close.
pub(crate) struct Governing {
    pub(crate) enforcement: Enforcement,
    pub(crate) services: Option<NameServices>,
    admin_task: Option<tokio::task::JoinHandle<()>>,
    /// The kill switches when no gateway runs (the gateway follows them
    /// itself): they then stop the agent in the kernel alone.
    kill: Option<killswitch::KillSwitchService>,
}

impl Governing {
    /// Binds the operator listeners (before anything is attached), attaches
    /// the programs (`ProgramsAttached`), serves the metrics and starts the
    /// resolver, proxies and gateway (`ResolverListening`).
    pub(crate) async fn start(
        opts: &RunOptions,
        agent_id: &str,
        plan: EgressPlan,
        opened: &Opened,
    ) -> Result<Self, RunError> {
        let metrics = &opened.metrics;
        for rule in plan.allowlist.rules() {
            info!(agent_id = %agent_id, target = %rule.target, protocols = ?rule.protocols, source = %rule.source, "egress allow rule");
        }
        let fleet_identity = fleet_identity(opts, agent_id, &plan);
        let listeners = OperatorListeners::bind(opts, &plan).await?;
        let enforcement = Enforcement::start(
            opts,
            agent_id,
            &plan,
            &listeners,
            metrics,
            opened.events.clone(),
        )?;
        metrics.readiness().set(Check::ProgramsAttached, true);
        let admin_task = listeners
            .metrics
            .map(|l| listeners::serve_metrics(l, &enforcement.enforcer, metrics, agent_id));
        let services = start_name_services(
            opts,
            agent_id,
            plan,
            (listeners.admin, listeners.private),
            &enforcement,
            metrics,
            &opened.trail,
        )
        .await;
        let services = match services {
            Ok(s) => s,
            Err(e) => {
                // The enforcement stays pinned and attached (fail closed).
                if let Some(task) = admin_task {
                    task.abort();
                }
                return Err(e);
            }
        };
        // Without name rules there is no resolver to wait for.
        metrics.readiness().set(Check::ResolverListening, true);
        let kill = match (&opts.fleet_controls, &services) {
            (Some(file), s) if !s.as_ref().is_some_and(NameServices::runs_gateway) => {
                Some(killswitch::KillSwitchService::start(
                    fleet_identity,
                    Some(file.clone()),
                    opts.state_dir.join("agents").join(agent_id),
                    killswitch::RunStopper {
                        gateway: None,
                        enforcer: Arc::downgrade(&enforcement.enforcer),
                    },
                    &enforcement.events,
                )?)
            }
            _ => None,
        };
        Ok(Governing {
            enforcement,
            services,
            admin_task,
            kill,
        })
    }

    /// Stops the services and the metrics, drains the last kernel events
    /// and tears down (or, with `keep_pinned`, keeps) the pinned state.
    pub(crate) async fn stop(
        self,
        metrics: &Arc<Metrics>,
        agent_id: &str,
        keep_pinned: bool,
    ) -> Result<(), RunError> {
        metrics.readiness().set(Check::ResolverListening, false);
        if let Some(kill) = self.kill {
            kill.stop();
        }
        if let Some(services) = self.services {
            services.shutdown().await;
        }
        if let Some(task) = self.admin_task {
            task.abort();
            let _ = task.await;
        }
        metrics.readiness().set(Check::ProgramsAttached, false);
        self.enforcement
            .finish(metrics, agent_id, keep_pinned)
            .await
    }
}

/// Everything after the plan and the audit trail: enforcement, services,
/// the agent, and the teardown.
async fn governed(
    opts: &RunOptions,
    agent_id: &str,
    plan: EgressPlan,
    opened: &Opened,
) -> Result<i32, RunError> {
    let secret_sources = secret_sources(opts)?;
    let (user, uid_lease) = agent::agent_user(opts, agent_id)?;
    // The sidecar binds no socket file of its own: the search can start
    // now and run while the kernel programs load.
    let socket_scan = unix_mask::Scan::start(user.uid);
    let governing = Governing::start(opts, agent_id, plan, opened).await?;
    let metrics = &opened.metrics;
    let mut sidecar_env = vec![("AGENT_SIDECAR_AGENT_ID".to_string(), agent_id.to_string())];
    if let Some(services) = &governing.services {
        sidecar_env.extend(services.env().iter().cloned());
    }
    let launch = agent::Launch {
        opts,
        agent_id,
        user,
        sidecar_env,
        secret_sources: &secret_sources,
    };
    let mut applied_limits = None;
    let code = launch
        .run_to_exit(
            &governing.enforcement.enforcer,
            metrics,
            &mut applied_limits,
            socket_scan,
        )
        .await;
    if let Ok(code) = &code {
        info!(agent_id = %agent_id, exit_code = code, "agent exited");
    }
    let finished = governing.stop(metrics, agent_id, opts.keep_pinned).await;
    if let Some(applied) = applied_limits {
        applied.remove(Duration::from_secs(2));
    }
    if let Some(lease) = uid_lease {
        info!(agent_id = %agent_id, uid = lease.user().uid, "agent user released");
    }
    finished?;
    code
}

/// The sidecar holds secrets: no core dump of it, and its /proc files stay
/// root's. Its own connections need descriptors.
pub(crate) fn harden_sidecar() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        warn!(error = %e, "cannot make the sidecar non-dumpable");
    }
    raise_fd_limit();
}

/// `--agent-id`, needed with a gateway (it names the agent's document in
/// the policy set), else `<command name>-<pid>`.
/// Kill switches are matched against the agent's team and roles, which
/// the tier policy set declares: without one, a team or role switch could
/// never cover the agent.
pub(crate) fn check_fleet_controls(opts: &RunOptions) -> Result<(), RunError> {
    if opts.fleet_controls.is_some() && opts.gateway.is_none() {
        return Err(RunError::FleetControls(
            "--fleet-controls needs the tier policy set that names the agent's team and roles: give --policy-dir (and --agent-id) too"
                .into(),
        ));
    }
    Ok(())
}

/// The agent as kill switch scopes see it: its team and roles from the
/// policy set's agent document, its instance from `serve`'s pod.
fn fleet_identity(opts: &RunOptions, agent_id: &str, plan: &EgressPlan) -> FleetIdentity {
    let instance_id = opts
        .pod
        .as_ref()
        .map_or_else(|| agent_id.to_string(), |p| p.instance_id.clone());
    match &plan.gateway {
        Some(g) => FleetIdentity {
            agent_id: agent_id.to_string(),
            instance_id,
            team: g.identity.team.clone(),
            roles: g.store.current().agent_roles(agent_id),
            environment: g.identity.environment.clone(),
        },
        None => FleetIdentity {
            agent_id: agent_id.to_string(),
            instance_id,
            team: opts.pod.as_ref().and_then(|p| p.team.clone()),
            roles: Vec::new(),
            environment: String::new(),
        },
    }
}

fn agent_id(opts: &RunOptions) -> Result<String, RunError> {
    check_fleet_controls(opts)?;
    match (&opts.agent_id, &opts.gateway) {
        (Some(id), _) => Ok(id.clone()),
        (None, Some(_)) => Err(RunError::Gateway(
            "--policy-dir needs --agent-id: the id of the agent's document in the policy set"
                .into(),
        )),
        (None, None) => Ok(default_agent_id(&opts.command)),
    }
}

/// Starts the resolver, the proxies and the gateway when any name rule
/// exists (a gateway always brings its tool hosts).
async fn start_name_services(
    opts: &RunOptions,
    agent_id: &str,
    plan: EgressPlan,
    (admin_listener, private): (Option<tokio::net::TcpListener>, Vec<PrivateListener>),
    enforcement: &Enforcement,
    metrics: &Arc<Metrics>,
    trail: &crate::events::AuditTrail,
) -> Result<Option<NameServices>, RunError> {
    if plan.names.is_empty() {
        return Ok(None);
    }
    for rule in plan.names.rules() {
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
        intercept_ports: plan.intercept_ports.clone(),
        grace: Duration::from_secs(60),
        idle: Duration::from_secs(120),
        proxy_env: opts.names.proxy_env,
        private_listeners: private,
        explicit_listen: opts.names.explicit_listen,
        drain: opts.names.drain,
    };
    let gateway = match (opts.gateway.clone(), plan.gateway) {
        (Some(options), Some(policy)) => Some(gateway::GatewayStart {
            redaction_key: options
                .redaction_key
                .clone()
                .unwrap_or_else(|| opts.state_dir.join("redaction.key")),
            webhook_secret: options
                .webhook_secret_file
                .clone()
                .unwrap_or_else(|| opts.state_dir.join("webhook.secret")),
            options,
            policy,
            agent_dir: opts.state_dir.join("agents").join(agent_id),
            admin_listener,
            metrics: metrics.clone(),
            events: enforcement.events.clone(),
            journal: Some(Arc::new(trail.sink())),
            instance_id: opts.pod.as_ref().map(|p| p.instance_id.clone()),
            fleet_controls: opts.fleet_controls.clone(),
            allowlist: plan.allowlist.clone(),
        }),
        _ => None,
    };
    let services = NameServices::start(
        agent_id,
        plan.names,
        &config,
        enforcement.enforcer.clone(),
        &enforcement.events,
        metrics,
        gateway,
    )
    .await?;
    Ok(Some(services))
}

/// `(secret name, variable)` of every secret read from an environment
/// variable; refuses a source the agent's environment would expose, before
/// anything is set up.
fn secret_sources(opts: &RunOptions) -> Result<Vec<(String, String)>, RunError> {
    use crate::credentials::SecretSource;
    let sources: Vec<(String, String)> = opts
        .gateway
        .iter()
        .flat_map(|g| &g.secrets)
        .filter_map(|s| match &s.source {
            SecretSource::Env(var) => Some((s.name.clone(), var.clone())),
            SecretSource::File(_) => None,
        })
        .collect();
    env::agent_env(&env::EnvInputs {
        operator: &[],
        options: &opts.env,
        secret_sources: &sources,
        sidecar: &[],
        home: std::path::Path::new(env::NO_HOME),
    })?;
    Ok(sources)
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
