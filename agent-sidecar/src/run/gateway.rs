//! The tool gateway of `run`: the tier policy set, the agent's identity,
//! the sidecar CA and the agent's trust bundle, the approvals journal, the
//! admin listener and the kernel quarantine.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, Weak},
};

use tokio::{net::TcpListener, task::JoinHandle};
use tracing::{error, info, warn};

use super::RunError;
use crate::{
    admin::Admin,
    approvals::{
        ApprovalStore, ApprovalStoreOptions, BearerToken, Notifier, StoreConfig, WebhookConfig,
        WebhookNotifier,
    },
    credentials::{SecretSpec, SecretStore},
    egress::{Allowlist, Breadth, NameAllowlist, NameRule},
    events::{ApprovalEvents, EventBus, Notices},
    fleet::FleetIdentity,
    gateway::{
        AttemptJournal, Gateway, GatewayConfig, GatewayParts,
        hooks::{Quarantine, QuarantineSwitch},
    },
    inventory::{Inventory, InventoryIdentity},
    kernel::Enforcer,
    metrics::Metrics,
    policy::{
        AgentIdentity, PolicyStore, StoreOptions, WatchOptions,
        reload::{ReloadObserver, WatchHandle},
        watch,
    },
    proxy::Resolve,
    redaction::RedactionKey,
    tls::{
        AgentTrustBundle, CaOptions, CertificateAuthority, SystemRoots, TerminatorOptions,
        TlsTerminator, TrustAnchors,
    },
    webhook::{DeliveryMetrics, WebhookSecret},
};

/// `run`'s tool gateway settings (`--policy-dir` and friends).
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// The tier policy set.
    pub policy_dir: PathBuf,
    /// Where every version put in force is archived (`<hash>/`).
    pub policy_archive: Option<PathBuf>,
    /// Deployment environment of the agent (selects the overlay).
    pub environment: String,
    /// Credentials by name.
    pub secrets: Vec<SecretSpec>,
    /// Operator CA certificate and key (default: generated per start).
    pub ca: Option<(PathBuf, PathBuf)>,
    /// Extra CAs trusted for upstream tool servers.
    pub upstream_cas: Vec<PathBuf>,
    /// Admin API (approvals, compensations, quarantine).
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token file of the admin API (mode 0600).
    pub admin_token_file: Option<PathBuf>,
    /// Webhook of the agent's owner (tier 2 and 4).
    pub owner_webhook: Option<String>,
    /// Webhook of the SOC (tier 4, quarantine).
    pub soc_webhook: Option<String>,
    /// Webhook of the approvers (tier 3).
    pub approver_webhook: Option<String>,
    /// The deployment's redaction key (keyed hashes of redacted input
    /// fields); default `<state dir>/redaction.key`, generated (mode 0600)
    /// when absent.
    pub redaction_key: Option<PathBuf>,
    /// The signing secret of the approver, owner and SOC webhooks; default
    /// `<state dir>/webhook.secret`, generated (mode 0600) when absent.
    pub webhook_secret_file: Option<PathBuf>,
    /// Where behavioural baselines persist (none: in memory only).
    pub baseline_dir: Option<PathBuf>,
    /// Syslog collectors of the alerts.
    pub syslog: Vec<crate::detect::SyslogTarget>,
    /// Gateway behaviour (SLA, limits, timeouts).
    pub config: GatewayConfig,
    /// Approver directory of the admin API (mode 0600).
    pub approvers_file: Option<PathBuf>,
    /// A candidate policy set decided beside the active one, not enforced.
    pub shadow_policies: Option<PathBuf>,
    /// Policy fixtures run against the set in force (continuous tests).
    pub policy_fixtures: Option<PathBuf>,
    /// This agent's fleet identity for calls between agents (docs/delegation.md).
    pub agent_identity: Option<crate::delegation::config::IdentityConfig>,
    /// The endpoint where other agents' sidecars call this agent.
    pub a2a_inbound: Option<super::a2a::InboundOptions>,
}

/// The policy side of the gateway, loaded before the kernel is touched.
pub(crate) struct GatewayPolicy {
    pub(crate) store: Arc<PolicyStore>,
    pub(crate) identity: AgentIdentity,
    /// The agent's egress from the tier policy (addresses).
    pub(crate) egress: Allowlist,
    /// The tool hosts, allowed by name on their port.
    pub(crate) names: NameAllowlist,
    /// Ports of tool hosts (to intercept).
    pub(crate) ports: Vec<u16>,
}

fn err(what: impl std::fmt::Display) -> RunError {
    RunError::Gateway(what.to_string())
}

/// Compiles the policy set and finds the agent in it. The agent must be
/// declared with an owner.
pub(crate) fn load_policy(
    opts: &GatewayOptions,
    agent_id: &str,
    observer: &Arc<dyn ReloadObserver>,
) -> Result<GatewayPolicy, RunError> {
    let store = PolicyStore::open(
        &opts.policy_dir,
        StoreOptions {
            archive_dir: opts.policy_archive.clone(),
            ..StoreOptions::default()
        },
        Some(observer.clone()),
    )
    .map_err(|e| err(format!("policy set {}: {e}", opts.policy_dir.display())))?;
    let set = store.current();
    let identity = set.identity(agent_id, &opts.environment);
    if identity.owner.as_deref().is_none_or(str::is_empty) {
        return Err(err(format!(
            "agent `{agent_id}` is not declared in {} with an owner: every governed agent needs an accountable owner (add a `kind: agent` document with `id: {agent_id}`, `owner:` and `purpose:`), and --agent-id must name it",
            opts.policy_dir.display()
        )));
    }
    let egress = set.egress_allowlist(agent_id).cloned().unwrap_or_default();
    let mut names = NameAllowlist::default();
    for rule in set.egress_names(agent_id).unwrap_or_default() {
        names.push(rule.clone());
    }
    let mut ports = Vec::new();
    for host in set.inspected_hosts() {
        let rule = NameRule::parse(&format!("{}:{}", host.host, host.port), Breadth::Strict)
            .map_err(|e| err(format!("tool host {}: {e}", host.host)))?;
        names.push(rule);
        if !ports.contains(&host.port) {
            ports.push(host.port);
        }
    }
    if let Some(id) = &opts.agent_identity {
        id.load().map_err(err)?;
    }
    Ok(GatewayPolicy {
        store: Arc::new(store),
        identity,
        egress,
        names,
        ports,
    })
}

/// Quarantine through the kernel: the agent's allowlist becomes deny-all,
/// then its open sockets are destroyed. Holds the enforcer weakly, so that
/// it never delays the teardown.
struct KernelQuarantine(Weak<Mutex<Enforcer>>);

/// Time between the quarantine flag and the destruction of the agent's
/// sockets: the refusal that caused the quarantine, already handed to the
/// agent's connection, lands in the agent's receive queue meanwhile (every
/// packet the agent sends is already dropped, so nothing leaves).
const SOCKET_SETTLE: std::time::Duration = std::time::Duration::from_millis(250);

impl KernelQuarantine {
    fn set_flag(&self, on: bool) -> Result<(), String> {
        let enforcer = self
            .0
            .upgrade()
            .ok_or_else(|| "the sidecar is shutting down".to_string())?;
        let mut guard = enforcer
            .lock()
            .map_err(|_| "enforcer lock poisoned".to_string())?;
        guard.set_quarantine_flag(on).map_err(|e| e.to_string())
    }
}

/// Destroys the agent's sockets after [`SOCKET_SETTLE`], if the quarantine
/// is still on (the teardown destroys them anyway).
fn destroy_sockets_soon(enforcer: Weak<Mutex<Enforcer>>) {
    let spawned = std::thread::Builder::new()
        .name("quarantine".into())
        .spawn(move || {
            std::thread::sleep(SOCKET_SETTLE);
            let Some(enforcer) = enforcer.upgrade() else {
                return;
            };
            let Ok(mut guard) = enforcer.lock() else {
                return;
            };
            if !guard.quarantined() {
                return;
            }
            match guard.destroy_sockets() {
                Ok(report) => info!(
                    destroyed = report.destroyed,
                    "quarantine: the agent's open sockets were destroyed"
                ),
                Err(e) => error!(
                    error = %e,
                    "quarantine: the agent's open sockets could not all be destroyed; their packets stay dropped"
                ),
            }
        });
    if let Err(e) = spawned {
        error!(error = %e, "quarantine: cannot start destroying the agent's sockets; their packets stay dropped");
    }
}

impl Quarantine for KernelQuarantine {
    fn quarantine(&self, reason: &str) -> Result<(), String> {
        warn!(
            reason,
            "quarantining the agent: every egress is denied in the kernel and its open connections are cut"
        );
        self.set_flag(true)?;
        destroy_sockets_soon(self.0.clone());
        Ok(())
    }

    fn release(&self) -> Result<(), String> {
        self.set_flag(false)
    }
}

/// The running gateway: what `run` gives the proxy and the agent.
pub(crate) struct GatewayServices {
    pub(crate) gateway: Gateway,
    pub(crate) bundle: AgentTrustBundle,
    admin_task: Option<JoinHandle<()>>,
    /// The behavioural detectors.
    detection: Option<super::detection::DetectionServices>,
    /// Reloads the policy set when its directory changes.
    _reload: WatchHandle,
    /// The kill switches.
    kill: super::killswitch::KillSwitchService,
    /// The agent's just-in-time grants, when the policy allows any.
    grants: Option<super::grants::RunGrants>,
    /// Reloads the candidate policy set of `--shadow-policies`.
    _shadow_watch: Option<WatchHandle>,
    /// Runs `--policy-fixtures` against the set in force.
    policy_tests: Option<JoinHandle<()>>,
    /// The endpoint of calls from other agents (`--a2a-listen`).
    a2a_task: Option<JoinHandle<()>>,
}

impl GatewayServices {
    /// Stops the admin listener; closes the open alerts and writes the
    /// baselines.
    pub(crate) async fn shutdown(self) {
        if let Some(t) = self.admin_task {
            t.abort();
            let _ = t.await;
        }
        if let Some(d) = self.detection {
            d.shutdown().await;
        }
        self.kill.stop();
        if let Some(g) = self.grants {
            g.stop();
        }
        if let Some(t) = self.policy_tests {
            t.abort();
        }
        if let Some(t) = self.a2a_task {
            t.abort();
        }
    }
}

/// How the gateway's webhooks deliver: signed with `secret`, verified
/// like upstreams (`tls`: system roots and `--upstream-ca`), through the
/// sidecar's pooled client and its own `HTTPS_PROXY`/`HTTP_PROXY`/
/// `NO_PROXY` (`proxy`: the operator's environment, never the agent's),
/// queued under `<queue_dir>/<sink>`, counted in
/// `agent_sidecar_webhook_deliveries_total`.
struct WebhookParts<'a> {
    secret: &'a WebhookSecret,
    tls: &'a Arc<rustls::ClientConfig>,
    proxy: Option<Arc<hyper_util::client::proxy::matcher::Matcher>>,
    queue_dir: PathBuf,
    metrics: Arc<dyn DeliveryMetrics>,
}

impl WebhookParts<'_> {
    /// A webhook notifier for `url`, named `sink` (`approver`, `owner`,
    /// `soc`).
    fn notifier(
        &self,
        url: &Option<String>,
        sink: &str,
    ) -> Result<Option<Arc<WebhookNotifier>>, RunError> {
        url.as_ref()
            .map(|u| {
                let config = WebhookConfig {
                    tls: Some(self.tls.clone()),
                    proxy: self.proxy.clone(),
                    secret: Some(self.secret.clone()),
                    queue_dir: Some(self.queue_dir.join(sink)),
                    sink: sink.to_string(),
                    metrics: Some(self.metrics.clone()),
                    ..WebhookConfig::new(u.clone())
                };
                info!(webhook = sink, queue = %self.queue_dir.join(sink).display(), "signed webhook events, queued on disk");
                WebhookNotifier::spawn(config)
                    .map(Arc::new)
                    .map_err(|e| err(format!("{sink} webhook: {e}")))
            })
            .transpose()
    }
}

/// What the tool gateway needs to start next to the proxies.
pub(crate) struct GatewayStart {
    pub(crate) options: GatewayOptions,
    pub(crate) policy: GatewayPolicy,
    /// Holds the approvals journal and the agent's trust bundle.
    pub(crate) agent_dir: PathBuf,
    /// The redaction key file (`--redaction-key`, or its default).
    pub(crate) redaction_key: PathBuf,
    /// The webhooks' signing secret (`--webhook-secret-file`, or its
    /// default).
    pub(crate) webhook_secret: PathBuf,
    pub(crate) admin_listener: Option<TcpListener>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) events: EventBus,
    /// Where each decided call's attempt is recorded before it proceeds.
    pub(crate) journal: Option<Arc<dyn AttemptJournal>>,
    /// `serve`'s instance id (for the inventory and kill switch scopes).
    pub(crate) instance_id: Option<String>,
    /// `--fleet-controls`: the file of kill switches every sidecar follows.
    pub(crate) fleet_controls: Option<PathBuf>,
    /// The planned egress allowlist (what egress grants are added to).
    pub(crate) allowlist: crate::egress::Allowlist,
}

/// Starts the gateway.
pub(crate) async fn start(
    start: GatewayStart,
    resolver: Arc<dyn Resolve>,
    enforcer: Arc<Mutex<Enforcer>>,
) -> Result<GatewayServices, RunError> {
    let GatewayStart {
        options: opts,
        policy,
        agent_dir,
        redaction_key,
        webhook_secret,
        admin_listener,
        metrics,
        events,
        journal,
        instance_id,
        fleet_controls,
        allowlist,
    } = start;
    let secrets = SecretStore::load(&opts.secrets).map_err(err)?;
    let key_path = redaction_key;
    let (redaction_key, generated) = RedactionKey::open_or_create(&key_path).map_err(err)?;
    if generated {
        warn!(key = %key_path.display(), id = redaction_key.id(), "generated a new redaction key (mode 0600): give the same file to every instance whose hashed fields should correlate");
    } else {
        info!(key = %key_path.display(), id = redaction_key.id(), "redaction key");
    }
    let ca = match &opts.ca {
        Some((cert, key)) => CertificateAuthority::load(cert, key).map_err(err)?,
        None => CertificateAuthority::generate(&CaOptions::default()).map_err(err)?,
    };
    let anchors = TrustAnchors::load(&SystemRoots::Probe, &opts.upstream_cas).map_err(err)?;
    let names_store = policy.store.clone();
    let allow: crate::tls::MayTerminate =
        Arc::new(move |name: &str| names_store.current().inspected(name).is_some());
    let tls = TlsTerminator::new(ca, anchors, allow, TerminatorOptions::default()).map_err(err)?;
    let trust_dir = agent_dir.join("trust");
    let bundle = tls.write_agent_bundle(&trust_dir).map_err(err)?;
    make_traversable(&agent_dir)?;

    let webhook_tls = Arc::new(tls.upstream_client_config());
    let webhook_secret_path = webhook_secret;
    let (webhook_secret, generated) =
        WebhookSecret::open_or_create(&webhook_secret_path).map_err(err)?;
    if generated {
        warn!(secret = %webhook_secret_path.display(), "generated a new webhook signing secret (mode 0600): give it to the approver, owner and SOC webhooks to verify the signatures");
    }
    let hooks = WebhookParts {
        secret: &webhook_secret,
        tls: &webhook_tls,
        proxy: crate::http_client::proxy_from_env(),
        queue_dir: agent_dir.join("webhooks"),
        metrics: metrics.webhook_deliveries(&policy.identity.id),
    };
    let approver = hooks.notifier(&opts.approver_webhook, "approver")?;
    let grant_hook = approver.clone();
    let approvals_dir = agent_dir.join("approvals");
    let (approvals, replay) = ApprovalStore::open_with(
        &approvals_dir,
        ApprovalStoreOptions {
            notifier: Some(Arc::new(ApprovalEvents {
                bus: events.clone(),
                next: approver.map(|w| w as Arc<dyn Notifier>),
            })),
            metrics: Some(metrics.approvals()),
            config: StoreConfig {
                max_pending_per_agent: opts.config.max_pending_approvals,
                ..StoreConfig::default()
            },
        },
    )
    .await
    .map_err(|e| {
        err(format!(
            "approvals journal {}: {e}",
            approvals_dir.display()
        ))
    })?;
    info!(journal = %approvals_dir.display(), replay = ?replay, "approvals journal open");
    let soc = hooks.notifier(&opts.soc_webhook, "soc")?;
    events.add(Arc::new(Notices {
        owner: hooks.notifier(&opts.owner_webhook, "owner")?,
        soc: soc.clone(),
    }));
    let chains = policy.store.current();
    let chains = chains.approval_chains(&policy.identity.id);
    if !chains.is_empty() && opts.approvers_file.is_none() {
        let names: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
        return Err(err(format!(
            "the policy declares approval chains for agent `{}` ({}), and checking an approver against a chain needs the approver directory: give --approvers-file (see docs/approvals.md#approval-chains-and-approvers)",
            policy.identity.id,
            names.join(", ")
        )));
    }
    let mut config = opts.config.clone();
    config.quotas = Some(
        crate::quotas::for_agent(
            &policy.store.current(),
            &policy.identity.id,
            &agent_dir,
            opts.config.quota_redis.as_deref(),
            Some(metrics.scoped_registry()),
        )
        .await
        .map_err(err)?,
    );
    let shadow_watch = match &opts.shadow_policies {
        Some(dir) => {
            let candidate = Arc::new(
                PolicyStore::open(dir, StoreOptions::default(), None).map_err(|e| {
                    err(format!(
                        "--shadow-policies {}: {e}; the candidate must compile to be compared",
                        dir.display()
                    ))
                })?,
            );
            info!(dir = %dir.display(), version = %candidate.current().version().hash, "shadow policies: the candidate is decided beside the active set, never enforced");
            config.shadow = Some(
                crate::shadow::Shadow::new(
                    candidate.clone(),
                    Some(Arc::new(events.clone())),
                    Some(metrics.scoped_registry()),
                )
                .map_err(err)?,
            );
            Some(watch(candidate, WatchOptions::default()).map_err(|e| {
                err(format!(
                    "cannot watch --shadow-policies {}: {e}",
                    dir.display()
                ))
            })?)
        }
        None => None,
    };
    let (a2a, a2a_task) = super::a2a::start(
        opts.agent_identity.as_ref(),
        opts.a2a_inbound.as_ref(),
        &policy.identity.id,
        &policy.store,
        &events,
    )
    .await?;
    config.a2a = a2a;
    let grants_in_force = crate::grants::GrantsInForce::default();
    config.grants = Some(grants_in_force.clone());
    let gateway = Gateway::new(GatewayParts {
        identity: policy.identity.clone(),
        policy: policy.store.clone(),
        tls: Arc::new(tls),
        resolver,
        secrets,
        approvals: approvals.clone(),
        quarantine: QuarantineSwitch::new(Arc::new(KernelQuarantine(Arc::downgrade(&enforcer)))),
        sink: Some(Arc::new(events.clone())),
        journal,
        redaction_key: Some(Arc::new(redaction_key)),
        config,
    })
    .map_err(err)?;
    let syslog = super::detection::syslog_sinks(
        &opts.syslog,
        opts.baseline_dir.as_deref().unwrap_or(&agent_dir),
        &policy.identity.id,
        &webhook_tls,
        &metrics,
    )?;
    let detection = super::detection::start(
        opts.baseline_dir.clone(),
        policy.store.clone(),
        &events,
        &gateway,
        soc,
        syslog,
        &metrics,
    );
    let kill = super::killswitch::KillSwitchService::start(
        FleetIdentity {
            agent_id: policy.identity.id.clone(),
            instance_id: instance_id
                .clone()
                .unwrap_or_else(|| policy.identity.id.clone()),
            team: policy.identity.team.clone(),
            roles: policy.store.current().agent_roles(&policy.identity.id),
            environment: policy.identity.environment.clone(),
        },
        fleet_controls,
        agent_dir.clone(),
        super::killswitch::RunStopper {
            gateway: Some(gateway.clone()),
            enforcer: Arc::downgrade(&enforcer),
        },
        &events,
    )?;
    let policy_tests = match &opts.policy_fixtures {
        Some(path) => Some(
            super::policy_tests::start(
                policy.store.clone(),
                path.clone(),
                policy.identity.id.clone(),
                metrics.scoped_registry(),
                events.clone(),
            )
            .map_err(err)?,
        ),
        None => None,
    };
    let grants = super::grants::RunGrants::start(
        policy.store.current().grantable(&policy.identity.id),
        &agent_dir,
        allowlist,
        Arc::downgrade(&enforcer),
        super::grants::GrantHooks {
            events: &events,
            detection: &detection.detection,
            decisions: &grants_in_force,
            approver: grant_hook,
        },
    )?;
    let inventory = Inventory::new(
        InventoryIdentity {
            agent_id: policy.identity.id.clone(),
            instance_id,
            owner: policy.identity.owner.clone(),
            team: policy.identity.team.clone(),
            purpose: policy.identity.purpose.clone(),
            environment: policy.identity.environment.clone(),
        },
        Some(metrics.inventory()),
    );
    inventory.policy_in_force(policy.store.current().version());
    events.add(Arc::new(inventory.clone()));
    let admin_task = match admin_listener {
        Some(listener) => {
            let path = opts.admin_token_file.as_ref().ok_or_else(|| {
                err("--admin-listen needs --admin-token-file (a file of mode 0600 holding the bearer token)")
            })?;
            let token = BearerToken::from_file(path).map_err(err)?;
            let addr = listener.local_addr().map_err(err)?;
            info!(%addr, "admin API: approvals, compensations, quarantine, alerts");
            let mut admin = Admin::api(approvals, token)
                .with_gateway(gateway.clone())
                .with_detection(detection.detection.clone())
                .with_inventory(inventory)
                .with_kill_switches(kill.switches.clone());
            if let Some(g) = &grants {
                admin = admin.with_grants(g.store.clone());
            }
            if let Some(path) = &opts.approvers_file {
                let approvers = crate::approvals::Approvers::from_file(path).map_err(err)?;
                info!(
                    approvers = approvers.len(),
                    "admin API: decisions need an approver's own token"
                );
                admin = admin.with_approvers(approvers);
            }
            Some(tokio::spawn(crate::admin::serve(listener, admin)))
        }
        None => None,
    };
    let set = policy.store.current();
    for host in set.inspected_hosts() {
        info!(host = %host.host, port = host.port, rest_tool = host.rest_tool.as_deref().unwrap_or("-"), mcp = host.mcp.len(), "tool host inspected by the gateway");
    }
    info!(
        agent = %policy.identity.id,
        owner = policy.identity.owner.as_deref().unwrap_or(""),
        environment = %policy.identity.environment,
        policy = %set.version(),
        ca = %gateway.ca_fingerprint(),
        "tool gateway ready"
    );
    let reload = watch(policy.store.clone(), WatchOptions::default()).map_err(|e| {
        err(format!(
            "cannot watch {} for policy changes: {e}",
            opts.policy_dir.display()
        ))
    })?;
    Ok(GatewayServices {
        gateway,
        bundle,
        admin_task,
        detection: Some(detection),
        _reload: reload,
        kill,
        grants,
        _shadow_watch: shadow_watch,
        policy_tests,
        a2a_task,
    })
}

/// The agent (an unprivileged user) must reach its trust bundle under
/// `dir` (`<state dir>/agents/<id>`): the directories from the state dir
/// down to `dir`, the sidecar's own, are made searchable by others. The
/// state dir's ancestors are not changed; one that others cannot search is
/// an error naming it.
fn make_traversable(dir: &Path) -> Result<(), RunError> {
    use std::os::unix::fs::PermissionsExt;
    let state_dir = dir.ancestors().nth(2).unwrap_or(dir);
    for p in dir.ancestors() {
        if p.as_os_str().is_empty() || p == Path::new("/") {
            break;
        }
        let mode = std::fs::metadata(p)
            .map_err(|e| err(format!("{}: {e}", p.display())))?
            .permissions()
            .mode();
        if mode & 0o001 != 0 {
            continue;
        }
        if p.starts_with(state_dir) {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o011))
                .map_err(|e| err(format!("make {} searchable: {e}", p.display())))?;
        } else {
            return Err(err(format!(
                "the agent runs unprivileged and must read its trust bundle under {}, but \
                 {} is not searchable by others (mode {:o}); choose a --state-dir whose \
                 parent directories are (the default {} is)",
                dir.display(),
                p.display(),
                mode & 0o7777,
                crate::kernel::pins::DEFAULT_STATE_DIR
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observer() -> Arc<dyn ReloadObserver> {
        Arc::new(Metrics::new())
    }

    #[test]
    fn only_the_state_dir_is_made_searchable() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = std::env::temp_dir().join(format!("ast-traverse-{}", std::process::id()));
        let private = root.join("private");
        let agent = private.join("state/agents/a1");
        std::fs::create_dir_all(&agent).unwrap();
        for d in [&private, &private.join("state"), &agent] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let e = make_traversable(&agent).expect_err("private ancestor");
        assert!(e.to_string().contains("private is not searchable"), "{e}");
        assert_eq!(
            mode(&private),
            0o700,
            "an ancestor of the state dir was changed"
        );
        // The state dir and below are the sidecar's own: made searchable.
        assert_eq!(mode(&agent) & 0o011, 0o011);
        assert_eq!(mode(&private.join("state")) & 0o011, 0o011);
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o711)).unwrap();
        make_traversable(&agent).expect("searchable ancestors");
        let _ = std::fs::remove_dir_all(&root);
    }

    fn options(dir: &Path) -> GatewayOptions {
        GatewayOptions {
            policy_dir: dir.to_path_buf(),
            policy_archive: None,
            environment: "prod".into(),
            secrets: Vec::new(),
            ca: None,
            upstream_cas: Vec::new(),
            admin_listen: None,
            admin_token_file: None,
            owner_webhook: None,
            soc_webhook: None,
            approver_webhook: None,
            webhook_secret_file: None,
            redaction_key: None,
            baseline_dir: None,
            syslog: Vec::new(),
            config: crate::gateway::GatewayConfig::default(),
            approvers_file: None,
            shadow_policies: None,
            policy_fixtures: None,
            agent_identity: None,
            a2a_inbound: None,
        }
    }

    #[test]
    fn an_agent_without_a_registered_owner_is_refused() {
        let dir = std::env::temp_dir().join(format!("gw-owner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("base.yaml"),
            "kind: base\nname: t\nlabel: t\ntools:\n  - name: erp\n    http: { host: erp.example.test }\n    actions:\n      - { name: list, method: GET, path: /v1/x }\negress:\n  names: [\"api.llm.example:443\"]\n",
        )
        .unwrap();
        let e = load_policy(&options(&dir), "ghost", &observer())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("not declared"), "{e}");
        std::fs::write(
            dir.join("agent.yaml"),
            "kind: agent\nid: clerk\nowner: jo@example.test\npurpose: files things\n",
        )
        .unwrap();
        let p = load_policy(&options(&dir), "clerk", &observer()).expect("declared with an owner");
        assert_eq!(p.identity.owner.as_deref(), Some("jo@example.test"));
        assert_eq!(p.ports, [443]);
        let names: Vec<String> = p.names.rules().iter().map(|r| r.to_string()).collect();
        assert_eq!(names, ["api.llm.example:443", "erp.example.test:443"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
