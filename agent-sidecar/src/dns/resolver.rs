//! One agent's resolver: the pure pipeline ([`super::handle`]) plus the
//! allowlist (hot-swappable), the cache, the upstream servers, the learned
//! addresses, events and metrics. Transport-independent: the listeners in
//! [`super::server`] feed it bytes.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use arc_swap::ArcSwap;

use super::{
    budget::{Budget, Charge},
    cache::{Cache, CacheKey},
    config::{DnsConfig, RefusalMode},
    events::{DnsEvent, DnsEventSink, Transport, rfc3339, trace},
    handle::{self, Pending, Policy, QueryOutcome, Reply, Step},
    learned::LearnedSink,
    metrics::AgentDnsMetrics,
    rebinding::classify,
    static_hosts::{STATIC_TTL, StaticHosts},
    upstream::UpstreamResolvers,
};
use crate::egress::NameAllowlist;
use hickory_proto::op::ResponseCode;

use super::{budget::Spent, decide::RefuseReason};

/// What the `upstream` field of an event says for a static-host answer.
pub const STATIC_SOURCE: &str = "static host (--static-host)";

/// Where the resolver reports: events, learned addresses, metrics. The
/// default reports events only to `tracing`, learns nothing and counts
/// nothing.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Receives every decision (the audit log).
    pub events: Option<Arc<dyn DnsEventSink>>,
    /// Receives learned addresses (the kernel allowlist maps).
    pub learned: Option<Arc<dyn LearnedSink>>,
    /// This agent's metric series ([`super::DnsMetrics::for_agent`]).
    pub metrics: Option<AgentDnsMetrics>,
}

/// One agent's resolver. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    agent_id: Arc<str>,
    allowlist: ArcSwap<NameAllowlist>,
    refusal: RefusalMode,
    max_ttl: u32,
    grace: std::time::Duration,
    cache: Mutex<Cache>,
    upstream: UpstreamResolvers,
    static_hosts: StaticHosts,
    budget: Budget,
    warn_gate: Mutex<WarnGate>,
    hooks: Hooks,
}

/// At most one per-query WARN line a second per agent; the rest are
/// counted and the count is logged with the next line that passes, so a
/// flood of failing queries cannot flood the log.
#[derive(Debug)]
struct WarnGate {
    last: Option<Instant>,
    suppressed: u64,
}

const WARN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The local step's result: an answer to send now, or work to do upstream.
pub enum Local {
    /// Answer now (cached or refused), `None`: send nothing.
    Now(Option<Vec<u8>>),
    /// Resolve upstream with [`Resolver::forward`].
    Forward(Box<Forward>),
}

/// A query waiting for its upstream answer.
pub struct Forward {
    pending: Pending,
    client: SocketAddr,
    transport: Transport,
}

impl Resolver {
    /// A resolver for `config.agent_id` answering from `allowlist`.
    pub fn new(config: &DnsConfig, allowlist: NameAllowlist, hooks: Hooks) -> Self {
        Resolver {
            inner: Arc::new(Inner {
                agent_id: config.agent_id.as_str().into(),
                allowlist: ArcSwap::from_pointee(allowlist),
                refusal: config.refusal,
                max_ttl: u32::try_from(config.max_ttl.as_secs()).unwrap_or(u32::MAX),
                grace: config.grace,
                cache: Mutex::new(Cache::new(config.cache_entries)),
                upstream: UpstreamResolvers::new(
                    config.upstreams.clone(),
                    config.upstream_timeout,
                    config.upstream_attempts,
                ),
                static_hosts: config.static_hosts.clone(),
                budget: Budget::new(config.budget),
                warn_gate: Mutex::new(WarnGate {
                    last: None,
                    suppressed: 0,
                }),
                hooks,
            }),
        }
    }

    /// Replaces the allowlist (policy reload) and empties the cache.
    pub fn set_allowlist(&self, allowlist: NameAllowlist) {
        self.inner.allowlist.store(Arc::new(allowlist));
        self.lock_cache().clear();
    }

    /// The current allowlist.
    pub fn allowlist(&self) -> Arc<NameAllowlist> {
        self.inner.allowlist.load_full()
    }

    /// Answers one query completely (local step, then upstream if needed).
    pub async fn handle(
        &self,
        bytes: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        match self.local(bytes, client, transport) {
            Local::Now(bytes) => bytes,
            Local::Forward(forward) => self.forward(forward).await,
        }
    }

    /// The synchronous step: parse, decide, answer from the static hosts,
    /// the cache or locally. Emits the event of everything it answers.
    pub fn local(&self, bytes: &[u8], client: SocketAddr, transport: Transport) -> Local {
        let allowlist = self.inner.allowlist.load();
        let policy = self.policy(&allowlist);
        match handle::begin(&policy, bytes, transport == Transport::Tcp) {
            Step::Reply(reply) => Local::Now(self.report(reply, client, transport, false, None)),
            Step::Forward(pending) => {
                let question = &pending.question;
                if let Some(addrs) = self
                    .inner
                    .static_hosts
                    .answer(&question.canonical, question.qtype)
                {
                    // Operator-given: no upstream, no rebinding guard.
                    let ttl = STATIC_TTL.min(self.inner.max_ttl);
                    let reply = handle::static_reply(&pending, &addrs, ttl);
                    self.learn(&pending, &reply.outcome.kept, Instant::now(), false);
                    let via = Some(STATIC_SOURCE.to_string());
                    return Local::Now(self.report(reply, client, transport, false, via));
                }
                let key = cache_key(&pending);
                let hit = self.lock_cache().get(&key, Instant::now());
                match hit {
                    Some((filtered, age)) => {
                        let reply = handle::reply_from_filtered(&pending, &filtered, age);
                        if let Some(m) = &self.inner.hooks.metrics {
                            m.cache_hits.inc();
                        }
                        Local::Now(self.report(reply, client, transport, true, None))
                    }
                    None => match self
                        .inner
                        .budget
                        .charge(&question.canonical, Instant::now())
                    {
                        Charge::Ok => Local::Forward(Box::new(Forward {
                            pending,
                            client,
                            transport,
                        })),
                        Charge::Refused { spent, first } => {
                            self.budget_refused(spent, first);
                            let rcode = match self.inner.refusal {
                                RefusalMode::NxDomain => ResponseCode::NXDomain,
                                RefusalMode::Refused => ResponseCode::Refused,
                            };
                            let reply = handle::refused_locally(
                                &pending,
                                rcode,
                                RefuseReason::BudgetExceeded,
                            );
                            Local::Now(self.report(reply, client, transport, false, None))
                        }
                    },
                }
            }
        }
    }

    /// Resolves a forwarded query upstream, filters, caches, learns and
    /// reports it; returns the bytes to send.
    pub async fn forward(&self, forward: Box<Forward>) -> Option<Vec<u8>> {
        let Forward {
            pending,
            client,
            transport,
        } = *forward;
        let started = Instant::now();
        let result = self.inner.upstream.resolve(&pending.question).await;
        if let Some(m) = &self.inner.hooks.metrics {
            m.upstream_seconds.observe(started.elapsed().as_secs_f64());
        }
        let answer = match result {
            Ok(answer) => answer,
            Err(e) => {
                if let Some(m) = &self.inner.hooks.metrics {
                    m.upstream_failed(&e);
                }
                let reply = handle::upstream_failed(&pending);
                return self.report(reply, client, transport, false, Some(e.to_string()));
            }
        };
        let allowlist = self.inner.allowlist.load();
        let policy = self.policy(&allowlist);
        let (reply, filtered) = handle::finish(&policy, &pending, &answer.message);
        let now = Instant::now();
        self.learn(&pending, &filtered.kept, now, true);
        self.lock_cache()
            .insert(cache_key(&pending), Arc::new(filtered), now);
        let via = format!(
            "{}{}",
            answer.server,
            if answer.tcp { " (tcp)" } else { "" }
        );
        self.report(reply, client, transport, false, Some(via))
    }

    /// Answers a forwarded query SERVFAIL without asking upstream: too many
    /// queries are in flight.
    pub(crate) fn overloaded(&self, forward: Box<Forward>) -> Option<Vec<u8>> {
        let reply = handle::upstream_failed(&forward.pending);
        let why = Some("not asked: too many upstream queries in flight".to_string());
        self.report(reply, forward.client, forward.transport, false, why)
    }

    /// Reports a TCP connection closed for broken framing (a message over
    /// the size limit).
    pub(crate) fn tcp_framing_error(&self, client: SocketAddr, error: &std::io::Error) {
        tracing::debug!(target: "agent_sidecar::dns", %client, %error, "dns tcp framing error");
        let reply = Reply {
            bytes: None,
            outcome: QueryOutcome::local(super::events::DnsDecision::Malformed, None, None),
        };
        self.report(reply, client, Transport::Tcp, false, None);
    }

    /// Hands the kept addresses to the learned sink, for every matching rule
    /// that learns (when `guarded`, a private address only for a rule that
    /// allows it; static hosts are not guarded).
    fn learn(
        &self,
        pending: &Pending,
        kept: &[(std::net::IpAddr, u32)],
        now: Instant,
        guarded: bool,
    ) {
        let Some(sink) = &self.inner.hooks.learned else {
            return;
        };
        let allowlist = self.inner.allowlist.load();
        for rule in allowlist.matches(&pending.question.canonical) {
            if !rule.learn {
                continue;
            }
            let endpoints = rule.endpoints();
            for &(ip, ttl) in kept {
                if guarded && classify(ip).is_some() && !rule.allow_private {
                    continue;
                }
                let expires =
                    now + std::time::Duration::from_secs(u64::from(ttl)) + self.inner.grace;
                sink.learned(rule, ip, &endpoints, expires);
                if let Some(m) = &self.inner.hooks.metrics {
                    m.learned.inc();
                }
            }
        }
    }

    fn policy<'a>(&self, allowlist: &'a NameAllowlist) -> Policy<'a> {
        Policy {
            allowlist,
            refusal: self.inner.refusal,
            max_ttl: self.inner.max_ttl,
        }
    }

    /// Counts a query refused by the budget; the first of a window is
    /// logged at WARN (the alert), the rest only counted.
    fn budget_refused(&self, spent: Spent, first: bool) {
        if let Some(m) = &self.inner.hooks.metrics {
            m.budget_refused(spent);
        }
        if first {
            let limits = self.inner.budget.limits();
            tracing::warn!(
                target: "agent_sidecar::dns",
                agent_id = %self.inner.agent_id,
                limit = spent.as_str(),
                queries_per_minute = limits.queries,
                names_per_minute = limits.names,
                "DNS budget spent: queries that would leave the sidecar are refused until the minute is over \
                 (a wildcard rule used as a channel, or a client that needs a higher --dns-budget-*)"
            );
        }
    }

    /// Whether a per-query WARN line may be written now; logs how many
    /// were held back since the last one.
    fn warn_passes(&self) -> bool {
        let now = Instant::now();
        let mut gate = self
            .inner
            .warn_gate
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if gate
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < WARN_INTERVAL)
        {
            gate.suppressed += 1;
            return false;
        }
        gate.last = Some(now);
        let suppressed = std::mem::take(&mut gate.suppressed);
        drop(gate);
        if suppressed > 0 {
            tracing::warn!(
                target: "agent_sidecar::dns",
                agent_id = %self.inner.agent_id,
                suppressed,
                "similar DNS warnings of this agent were not logged (at most one a second; every query is still an event and a metric)"
            );
        }
        true
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Emits the event and metrics of `reply`; returns its bytes.
    fn report(
        &self,
        reply: Reply,
        client: SocketAddr,
        transport: Transport,
        cached: bool,
        upstream: Option<String>,
    ) -> Option<Vec<u8>> {
        let Reply { bytes, outcome } = reply;
        let QueryOutcome {
            decision,
            question,
            reason,
            rcode,
            rule,
            kept,
            dropped,
            ttl,
        } = outcome;
        if let Some(m) = &self.inner.hooks.metrics {
            m.query(decision);
            m.rebinding_dropped.inc_by(dropped.len() as u64);
        }
        let event = DnsEvent {
            time: rfc3339(SystemTime::now()),
            agent_id: Arc::clone(&self.inner.agent_id),
            client,
            transport,
            qname: question.as_ref().map(|q| q.canonical.clone()),
            qtype: question.as_ref().map(|q| q.qtype.to_string()),
            decision,
            reason,
            rcode: rcode.map(|r| format!("{r:?}")),
            rule,
            answers: kept.into_iter().map(|(ip, _)| ip).collect(),
            dropped,
            ttl,
            cached,
            upstream,
        };
        if !event.decision.is_warning() || self.warn_passes() {
            trace(&event);
        }
        if let Some(sink) = &self.inner.hooks.events {
            sink.event(&event);
        }
        bytes
    }
}

fn cache_key(pending: &Pending) -> CacheKey {
    let q = &pending.question;
    (q.canonical.clone(), u16::from(q.qtype), u16::from(q.qclass))
}
