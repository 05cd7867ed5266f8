//! agent-sidecar's tool gateway wired the way `run` wires it, minus the
//! kernel: the `erp-gateway` policy fixture, a secret, the TLS terminator,
//! the approvals store, webhooks to the owner, the SOC and the approvers,
//! and the proxy listeners, in front of a [`ToolApi`].

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use agent_sidecar::{
    admin::Admin,
    approvals::{
        ApprovalStore, ApprovalStoreOptions, BearerToken, Notifier, StoreConfig, WebhookConfig,
        WebhookNotifier,
    },
    audit::record::AgentIdentity as AuditIdentity,
    credentials::{SecretSpec, SecretStore},
    delegation::event::DelegationSink,
    events::{ActionSink, ApprovalEvents, AuditOptions, AuditTrail, EventBus, LogLines, Notices},
    gateway::{
        Gateway, GatewayConfig, GatewayParts,
        hooks::{NoKernel, QuarantineSwitch},
    },
    metrics::Metrics,
    policy::{PolicyStore, StoreOptions, reload::ReloadObserver},
    proxy::ProxyContext,
    redaction::RedactionKey,
    tls::{
        AgentTrustBundle, CaOptions, CertificateAuthority, SystemRoots, TerminatorOptions,
        TlsTerminator, TrustAnchors,
    },
};
use tokio::net::TcpListener;

use super::proxy::{AllowList, MapResolve, Proxies};
use crate::{
    ca::TestCa,
    fixtures,
    temp::TempDir,
    tool_api::{HOST, SECRET, STREAM_PATH, ToolApi},
    webhook::Webhook,
};

/// A gateway in front of a [`ToolApi`], reachable through an explicit proxy
/// and a transparent listener for the tool port.
pub struct Harness {
    /// The CA of the tool API's certificate, which the gateway trusts.
    pub upstream_ca: TestCa,
    /// The tool API.
    pub api: ToolApi,
    /// The gateway.
    pub gateway: Gateway,
    /// Its proxy listeners.
    pub proxies: Proxies,
    /// The CA bundle the agent trusts (the gateway's CA).
    pub bundle: AgentTrustBundle,
    /// The approvals store.
    pub approvals: ApprovalStore,
    /// The tier policy in force (its directory is `policy_dir`; reload it
    /// after editing).
    pub policy: Arc<PolicyStore>,
    /// Where the policy fixture was written.
    pub policy_dir: PathBuf,
    /// The approvers' webhook (`approval.pending`, `approval.decided`).
    pub approver: Webhook,
    /// The agent owner's webhook.
    pub owner: Webhook,
    /// The SOC's webhook.
    pub soc: Webhook,
    /// The harness's files (policy, secret, trust bundle, approvals).
    pub dir: TempDir,
    /// The approvals directory.
    pub state: PathBuf,
    /// The audit trail, with [`Options::audit`].
    pub audit: Option<AuditTrail>,
    /// The redaction key of the keyed hashes (`redaction.key` beside the
    /// approvals directory, generated when absent).
    pub redaction_key: Arc<RedactionKey>,
    /// The sidecar's metrics, fed by the gateway's events as under `run`
    /// (`render()` is what `/metrics` serves).
    pub metrics: Arc<Metrics>,
    /// The action event bus the gateway's events go to (add a consumer
    /// with `events.add`).
    pub events: EventBus,
}

/// How [`Harness::start`] sets the gateway up.
pub struct Options {
    /// How long a held call waits for its approval.
    pub sla: Duration,
    /// Reuse this approvals directory (restart tests).
    pub state: Option<PathBuf>,
    /// The largest request body the gateway inspects.
    pub max_body: usize,
    /// Most pending approvals of the agent.
    pub max_pending: usize,
    /// Keep an audit trail with these settings (its directory defaults to
    /// `<harness dir>/audit/buyer`): attempts journalled before forward,
    /// every event recorded.
    pub audit: Option<AuditOptions>,
    /// Send the approvers' events here instead of to [`Harness::approver`]
    /// (a webhook that is down).
    pub approver_url: Option<String>,
    /// Send the owner's notices here instead of to [`Harness::owner`] (a
    /// slow webhook).
    pub owner_url: Option<String>,
    /// Count every call against these quotas.
    pub quotas: Option<agent_sidecar::quotas::Quotas>,
    /// Decide every call also under the candidate policy set written by
    /// this function into the given directory (a copy of the fixture to
    /// edit), as `--shadow-policies` does; differences go to the bus.
    pub shadow: Option<fn(&std::path::Path)>,
    /// YAML appended to the agent's document (`buyer.yaml`): its own
    /// tools, its `delegation:` section.
    pub agent_policy: Option<String>,
    /// Calls between agents: the identity and the tasks in force.
    pub a2a: Option<agent_sidecar::gateway::A2aConfig>,
    /// More tool hosts, resolved to 127.0.0.1 and allowed by the proxies
    /// (another agent's sidecar endpoint).
    pub extra_hosts: Vec<String>,
    /// Just-in-time grants in force, applied to every decision.
    pub grants: Option<agent_sidecar::grants::GrantsInForce>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sla: Duration::from_secs(60),
            state: None,
            max_body: 64 * 1024,
            max_pending: agent_sidecar::approvals::DEFAULT_MAX_PENDING_PER_AGENT,
            audit: None,
            approver_url: None,
            owner_url: None,
            quotas: None,
            shadow: None,
            agent_policy: None,
            a2a: None,
            extra_hosts: Vec::new(),
            grants: None,
        }
    }
}

impl Harness {
    /// A harness in front of a fresh recording [`ToolApi`] for [`HOST`].
    pub async fn start(opts: Options) -> Self {
        let upstream_ca = TestCa::new();
        let api = ToolApi::start(upstream_ca.leaf(&[HOST]).acceptor()).await;
        Self::start_with(opts, upstream_ca, api).await
    }

    /// A harness in front of `api`, whose certificate `upstream_ca` signed.
    pub async fn start_with(opts: Options, upstream_ca: TestCa, api: ToolApi) -> Self {
        let dir = TempDir::new();
        let policy_dir = dir.0.join("policy");
        std::fs::create_dir_all(&policy_dir).unwrap();
        fixtures::write_set(
            "erp-gateway",
            &policy_dir,
            &[
                ("HOST", HOST),
                ("PORT", &api.addr.port().to_string()),
                ("STREAM_PATH", STREAM_PATH),
            ],
        );
        if let Some(extra) = &opts.agent_policy {
            let path = policy_dir.join("buyer.yaml");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, format!("{text}\n{extra}\n")).unwrap();
        }
        let metrics = Arc::new(Metrics::new());
        let store = Arc::new(
            PolicyStore::open(
                &policy_dir,
                StoreOptions::default(),
                Some(metrics.clone() as Arc<dyn ReloadObserver>),
            )
            .expect("policy compiles"),
        );
        let identity = store.current().identity("buyer", "prod");
        let secret_file = dir.0.join("erp-token");
        std::fs::write(&secret_file, SECRET).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let spec: SecretSpec = format!("erp-token=file:{}", secret_file.display())
            .parse()
            .expect("secret spec");
        let secrets = SecretStore::load(&[spec]).expect("secrets");
        let anchors =
            TrustAnchors::load(&SystemRoots::Disabled, &[upstream_ca.ca_file()]).expect("anchors");
        let ca = CertificateAuthority::generate(&CaOptions::default()).expect("CA");
        let names = store.clone();
        let tls = TlsTerminator::new(
            ca,
            anchors,
            Arc::new(move |n: &str| names.current().inspected(n).is_some()),
            TerminatorOptions::default(),
        )
        .expect("terminator");
        let bundle = tls
            .write_agent_bundle(&dir.0.join("trust"))
            .expect("bundle");
        let state = opts
            .state
            .clone()
            .unwrap_or_else(|| dir.0.join("approvals"));
        let owner = Webhook::start().await;
        let soc = Webhook::start().await;
        let approver = Webhook::start().await;
        let hook = |url: &str, name: &str| {
            let mut c = WebhookConfig::new(url);
            c.initial_backoff = Duration::from_millis(50);
            c.attempts = 5;
            c.sink = name.to_string();
            c.metrics = Some(metrics.webhook_deliveries(&identity.id));
            Some(Arc::new(WebhookNotifier::spawn(c).expect("webhook")))
        };
        let bus = EventBus::new(vec![
            Arc::new(Notices {
                owner: hook(opts.owner_url.as_deref().unwrap_or(&owner.url), "owner"),
                soc: hook(&soc.url, "soc"),
            }),
            Arc::new(LogLines),
            metrics.clone() as Arc<dyn ActionSink>,
        ]);
        let audit = opts.audit.as_ref().map(|a| {
            AuditTrail::open(
                a,
                &dir.0,
                AuditIdentity {
                    id: identity.id.clone(),
                    owner: identity.owner.clone(),
                    team: identity.team.clone(),
                    purpose: identity.purpose.clone(),
                    environment: Some(identity.environment.clone()),
                    instance: Some("test-harness".into()),
                },
                None,
                serde_json::json!({"mode": "test-harness"}),
            )
            .expect("audit trail")
        });
        if let Some(trail) = &audit {
            bus.add(Arc::new(trail.sink()) as Arc<dyn ActionSink>);
        }
        let (approvals, _) = ApprovalStore::open_with(
            &state,
            ApprovalStoreOptions {
                notifier: Some(Arc::new(ApprovalEvents {
                    bus: bus.clone(),
                    next: hook(
                        opts.approver_url.as_deref().unwrap_or(&approver.url),
                        "approver",
                    )
                    .map(|w| w as Arc<dyn Notifier>),
                })),
                config: StoreConfig {
                    max_pending_per_agent: opts.max_pending,
                    ..StoreConfig::default()
                },
                metrics: Some(metrics.approvals()),
            },
        )
        .await
        .expect("approvals");
        let mut hosts = vec![HOST.to_string()];
        hosts.extend(opts.extra_hosts.iter().cloned());
        let resolver = Arc::new(MapResolve(
            hosts
                .iter()
                .map(|h| (h.clone(), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]))
                .collect::<HashMap<_, _>>(),
        ));
        let mut config = GatewayConfig {
            approval_sla: opts.sla,
            ..GatewayConfig::default()
        };
        config.limits.max_body_bytes = opts.max_body;
        config.quotas = opts.quotas.clone();
        config.grants = opts.grants.clone();
        config.a2a = opts.a2a.clone().map(|mut a| {
            a.sink
                .get_or_insert_with(|| Arc::new(bus.clone()) as Arc<dyn DelegationSink>);
            a
        });
        if let Some(edit) = opts.shadow {
            let candidate = dir.0.join("shadow-policy");
            std::fs::create_dir_all(&candidate).unwrap();
            for e in std::fs::read_dir(&policy_dir).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), candidate.join(e.file_name())).unwrap();
            }
            edit(&candidate);
            let store = Arc::new(
                PolicyStore::open(&candidate, StoreOptions::default(), None)
                    .expect("the candidate compiles"),
            );
            config.shadow = Some(
                agent_sidecar::shadow::Shadow::new(store, Some(Arc::new(bus.clone())), None)
                    .expect("shadow"),
            );
        }
        // Kept beside the approvals, as `run` keeps it in its state
        // directory: a restart on the same journal binds alike.
        let key_file = state.parent().unwrap_or(&state).join("redaction.key");
        let redaction_key = Arc::new(RedactionKey::open_or_create(&key_file).expect("key").0);
        let gateway = Gateway::new(GatewayParts {
            identity,
            policy: store.clone(),
            tls: Arc::new(tls),
            resolver: resolver.clone(),
            secrets,
            approvals: approvals.clone(),
            quarantine: QuarantineSwitch::new(Arc::new(NoKernel)),
            sink: Some(Arc::new(bus.clone())),
            journal: audit
                .as_ref()
                .map(|t| Arc::new(t.sink()) as Arc<dyn agent_sidecar::gateway::AttemptJournal>),
            redaction_key: Some(redaction_key.clone()),
            config,
        })
        .expect("gateway");
        let ctx = ProxyContext::new(Arc::new(AllowList(hosts)), resolver)
            .with_inspector(Arc::new(gateway.clone()))
            .with_metrics(metrics.proxy());
        let proxies = Proxies::start(&ctx, &[api.addr.port()]);
        Harness {
            upstream_ca,
            api,
            gateway,
            proxies,
            bundle,
            approvals,
            policy: store,
            policy_dir,
            approver,
            owner,
            soc,
            dir,
            state,
            audit,
            redaction_key,
            metrics,
            events: bus,
        }
    }

    /// The agent's URL for `path` on the tool host.
    pub fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.api.addr.port())
    }

    /// curl arguments that reach the tool host through the transparent
    /// listener (as the kernel's redirect would).
    pub fn transparent_args(&self) -> Vec<String> {
        let port = self.api.addr.port();
        let t = self.proxies.transparent[&port];
        vec![
            "--connect-to".into(),
            format!("{HOST}:{port}:{}:{}", t.ip(), t.port()),
            "--cacert".into(),
            self.bundle.bundle.display().to_string(),
        ]
    }

    /// `POST path` with the JSON `body`, as the agent sends it through the
    /// explicit proxy: (status, body).
    pub async fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        crate::curl::curl(
            &self.explicit_args(),
            &[
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                body,
                &self.url(path),
            ],
        )
        .await
    }

    /// Closes the audit trail (after a moment for the last records), so
    /// that it can be read whole.
    pub async fn close_audit(&mut self) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.audit
            .take()
            .expect("the harness keeps an audit trail")
            .close(serde_json::json!({"reason": "test end"}))
            .expect("audit trail closed");
    }

    /// curl arguments that go through the explicit proxy.
    pub fn explicit_args(&self) -> Vec<String> {
        vec![
            "--proxy".into(),
            format!("http://{}", self.proxies.explicit),
            "--cacert".into(),
            self.bundle.bundle.display().to_string(),
        ]
    }

    /// The sum of the values of the metric lines of [`Harness::metrics`]
    /// that start with `prefix` (a family name, or a name and the start of
    /// its labels); 0 when none does.
    pub fn metric(&self, prefix: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Serves the admin API with `token`; returns its base URL.
    pub async fn admin(&self, token: &str) -> String {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let admin = Admin::api(self.approvals.clone(), BearerToken::new(token).unwrap())
            .with_gateway(self.gateway.clone());
        tokio::spawn(agent_sidecar::admin::serve(listener, admin));
        url
    }
}
