//! Name-based egress for one governed agent: its DNS resolver, the explicit
//! and transparent HTTP(S) proxies, the kernel interception that sends the
//! agent's DNS and HTTP(S) there, and the learned destinations of non-HTTP
//! name rules.
//!
//! Everything listens on loopback in the agent's network namespace. The
//! kernel rewrites every port-53 packet and every connect to an intercepted
//! port (default 80 and 443) to these listeners, whatever address the agent
//! chose; the explicit proxy is offered through `HTTP_PROXY`/`HTTPS_PROXY`.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use agent_sidecar_common::{PROTO_TCP, PROTO_UDP};
use tokio::{sync::watch, task::JoinHandle};
use tracing::{info, warn};

use super::{
    RunError,
    gateway::{GatewayServices, GatewayStart},
    resolve::DnsResolve,
};
use crate::{
    dns::{self, DnsConfig, DnsServer, Hooks, LearnedSink, RefusalMode, StaticHosts},
    egress::{Endpoint, NameAllowlist, NameRule},
    kernel::Enforcer,
    proxy::{
        Allowed, ExplicitProxy, HostPolicy, HostRefusal, ProxyConfig, ProxyContext, Resolve,
        TransparentListener,
    },
};

/// How `run` sets up name-based egress.
#[derive(Clone, Debug)]
pub struct NamesConfig {
    /// Upstream resolvers of the agent's DNS resolver.
    pub upstreams: Vec<SocketAddr>,
    /// Names the resolver answers itself (`--static-host`), for the agent
    /// and for the proxies and gateway alike.
    pub static_hosts: StaticHosts,
    /// How names that are not allowlisted are answered.
    pub refusal: RefusalMode,
    /// The agent's DNS budget per minute.
    pub budget: dns::BudgetLimits,
    /// Destination ports whose TCP connects go to the transparent proxy.
    pub intercept_ports: Vec<u16>,
    /// How long a learned address stays allowed after its TTL.
    pub grace: Duration,
    /// Learned addresses that expired and saw no packet for this long are
    /// removed from the kernel maps.
    pub idle: Duration,
    /// Whether to set `HTTP_PROXY`/`HTTPS_PROXY` for the agent.
    pub proxy_env: bool,
    /// The sidecar's private listeners: the proxies never connect to their
    /// ports for the agent.
    pub private_listeners: Vec<super::private_listeners::PrivateListener>,
    /// The explicit proxy's address (`serve --proxy-listen`: the port the
    /// pod's `HTTP_PROXY` names) [default: an ephemeral loopback port].
    pub explicit_listen: Option<SocketAddr>,
    /// How long calls in flight may take to finish at shutdown.
    pub drain: Duration,
}

/// The running services; [`NameServices::shutdown`] stops them.
pub struct NameServices {
    dns: DnsServer,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    env: Vec<(String, String)>,
    gateway: Option<GatewayServices>,
}

const LOOPBACK4: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const LOOPBACK6: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0);

impl NameServices {
    /// Starts the resolver and proxies for `agent_id` and points the kernel
    /// interception of `enforcer` at them.
    pub(crate) async fn start(
        agent_id: &str,
        names: NameAllowlist,
        config: &NamesConfig,
        enforcer: Arc<Mutex<Enforcer>>,
        events: &crate::events::EventBus,
        metrics: &crate::metrics::Metrics,
        gateway: Option<GatewayStart>,
    ) -> Result<Self, RunError> {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        // DNS: one resolver, loopback v4 and v6, UDP and TCP on one port each.
        let mut dns_config = DnsConfig::new(
            agent_id,
            vec![LOOPBACK4, LOOPBACK6],
            config.upstreams.clone(),
        );
        dns_config.refusal = config.refusal;
        dns_config.budget = config.budget;
        dns_config.grace = config.grace;
        dns_config.static_hosts = config.static_hosts.clone();
        for (name, addrs) in config.static_hosts.iter() {
            let allowed = names.find(name).is_some();
            info!(agent_id, name, addrs = ?addrs, allowed, "static host: answered by the resolver without asking upstream");
        }
        let learner: Arc<dyn LearnedSink> = Arc::new(KernelLearner {
            enforcer: Arc::downgrade(&enforcer),
        });
        let hooks = Hooks {
            learned: Some(learner),
            events: Some(Arc::new(events.clone())),
            metrics: Some(metrics.dns(agent_id)),
        };
        let dns = dns::start(&dns_config, names.clone(), hooks)
            .await
            .map_err(|e| RunError::Names(format!("starting the DNS resolver: {e}")))?;
        let (dns4, dns6) = split_families(dns.local_addrs())?;
        {
            let mut enf = enforcer.lock().expect("enforcer lock");
            for proto in [PROTO_UDP, PROTO_TCP] {
                enf.intercept(proto, 53, dns4, dns6)?;
            }
        }
        info!(agent_id, v4 = %dns4, v6 = %dns6, "DNS resolver: every port-53 query of the agent comes here");

        // Proxies: one context, the resolver above for names.
        let proxy_config = ProxyConfig {
            agent_id: agent_id.to_string(),
            drain: config.drain,
            ..ProxyConfig::default()
        };
        let resolver: Arc<dyn Resolve> = Arc::new(DnsResolve::new(dns.resolver().clone()));
        let policy = AllowlistPolicy {
            names,
            private: config.private_listeners.clone(),
        };
        let mut ctx = ProxyContext::new(Arc::new(policy), resolver.clone())
            .with_config(proxy_config)
            .with_event_sink(Arc::new(events.clone()))
            .with_metrics(metrics.proxy());
        let gateway = match gateway {
            Some(g) => {
                let services = super::gateway::start(g, resolver, enforcer.clone()).await?;
                ctx = ctx.with_inspector(Arc::new(services.gateway.clone()));
                Some(services)
            }
            None => None,
        };

        let explicit =
            ExplicitProxy::bind(config.explicit_listen.unwrap_or(LOOPBACK4), ctx.clone())
                .map_err(proxy_err)?;
        let explicit_addr = explicit.local_addr().map_err(proxy_err)?;
        enforcer
            .lock()
            .expect("enforcer lock")
            .allow_sidecar_endpoint(explicit_addr, PROTO_TCP)?;
        tasks.push(tokio::spawn(explicit.serve(wait(stopped.clone()))));
        info!(agent_id, addr = %explicit_addr, "explicit HTTP(S) proxy");

        for &port in &config.intercept_ports {
            let l4 = TransparentListener::bind(LOOPBACK4, port, ctx.clone()).map_err(proxy_err)?;
            let l6 = TransparentListener::bind(LOOPBACK6, port, ctx.clone()).map_err(proxy_err)?;
            let (a4, a6) = (
                l4.local_addr().map_err(proxy_err)?,
                l6.local_addr().map_err(proxy_err)?,
            );
            let (v4, v6) = split_families(&[a4, a6])?;
            enforcer
                .lock()
                .expect("enforcer lock")
                .intercept(PROTO_TCP, port, v4, v6)?;
            tasks.push(tokio::spawn(l4.serve(wait(stopped.clone()))));
            tasks.push(tokio::spawn(l6.serve(wait(stopped.clone()))));
            info!(agent_id, port, v4 = %v4, v6 = %v6, "transparent proxy: TCP connects to this port come here");
        }

        // Learned destinations: expired and idle ones leave the kernel maps.
        let idle = config.idle;
        let gc_enforcer = enforcer.clone();
        let mut gc_stopped = stopped.clone();
        let gc_agent = agent_id.to_string();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = gc_stopped.changed() => return,
                }
                let removed = gc_enforcer
                    .lock()
                    .expect("enforcer lock")
                    .forget_expired(idle);
                match removed {
                    Ok(0) => {}
                    Ok(n) => info!(agent_id = %gc_agent, removed = n, "expired learned destinations removed"),
                    Err(e) => warn!(agent_id = %gc_agent, error = %e, "removing expired learned destinations"),
                }
            }
        }));

        let mut env = Vec::new();
        if config.proxy_env {
            let url = format!("http://{explicit_addr}");
            for key in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                env.push((key.to_string(), url.clone()));
            }
            // Some clients skip the proxy for names in NO_PROXY: keep it empty.
            for key in ["NO_PROXY", "no_proxy"] {
                env.push((key.to_string(), String::new()));
            }
        }
        if let Some(g) = &gateway {
            for (key, path) in &g.bundle.env {
                env.push((key.to_string(), path.display().to_string()));
            }
        }
        Ok(Self {
            dns,
            tasks,
            stop,
            env,
            gateway,
        })
    }

    /// Whether the tool gateway runs (it then follows the kill switches).
    pub fn runs_gateway(&self) -> bool {
        self.gateway.is_some()
    }

    /// Variables to set for the agent (the explicit proxy).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Stops accepting, stops the resolver and waits for the listeners.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(g) = self.gateway {
            g.shutdown().await;
        }
        self.dns.shutdown().await;
    }
}

fn proxy_err(e: crate::proxy::ProxyError) -> RunError {
    RunError::Names(format!("starting the HTTP(S) proxy: {e}"))
}

async fn wait(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// The IPv4 and IPv6 addresses of a listener pair.
fn split_families(addrs: &[SocketAddr]) -> Result<(SocketAddrV4, SocketAddrV6), RunError> {
    let v4 = addrs.iter().find_map(|a| match a {
        SocketAddr::V4(v4) => Some(*v4),
        SocketAddr::V6(_) => None,
    });
    let v6 = addrs.iter().find_map(|a| match a {
        SocketAddr::V6(v6) => Some(*v6),
        SocketAddr::V4(_) => None,
    });
    match (v4, v6) {
        (Some(v4), Some(v6)) => Ok((v4, v6)),
        _ => Err(RunError::Names(format!(
            "listeners {addrs:?} lack an IPv4 or IPv6 loopback address; is IPv6 disabled on lo?"
        ))),
    }
}

/// The proxy's name decisions, from the agent's name allowlist.
struct AllowlistPolicy {
    names: NameAllowlist,
    private: Vec<super::private_listeners::PrivateListener>,
}

impl HostPolicy for AllowlistPolicy {
    fn decide(&self, host: &str, port: u16) -> Result<Allowed, HostRefusal> {
        if super::private_listeners::is_private_port(&self.private, port) {
            return Err(HostRefusal::new(
                "private_listener",
                format!(
                    "port {port} is one of the sidecar's own listeners; the agent never reaches it"
                ),
            ));
        }
        match self.names.find_port(host, port, PROTO_TCP) {
            Some(rule) => Ok(Allowed::new(describe(rule))),
            None => Err(HostRefusal::new(
                "not_allowlisted",
                format!("no egress rule allows {host}:{port}"),
            )),
        }
    }
}

fn describe(rule: &NameRule) -> String {
    match &rule.source {
        Some(source) => format!("{rule} ({source})"),
        None => rule.to_string(),
    }
}

/// Puts the addresses that non-HTTP name rules resolved to into the kernel
/// allowlist until the answer's lifetime (TTL + grace) runs out. Holds the
/// enforcer weakly: the resolver lives on in clones (the proxies' and the
/// gateway's resolver) that must never keep the enforcement from its
/// teardown.
struct KernelLearner {
    enforcer: Weak<Mutex<Enforcer>>,
}

impl LearnedSink for KernelLearner {
    fn learned(&self, rule: &NameRule, addr: IpAddr, endpoints: &[Endpoint], expires: Instant) {
        let ttl = expires.saturating_duration_since(Instant::now());
        let Some(enforcer) = self.enforcer.upgrade() else {
            return; // shutting down
        };
        let mut enforcer = enforcer.lock().expect("enforcer lock");
        for endpoint in endpoints {
            if let Err(e) = enforcer.learn(addr, endpoint.port, endpoint.proto, 0, ttl) {
                // Fail closed: the destination stays refused; say why.
                warn!(error = %e, %addr, rule = %rule, "cannot allow a learned destination");
            }
        }
    }
}
