//! Prometheus metrics of the sidecar.
//!
//! Every family is named `agent_sidecar_*` (counters end in `_total`,
//! histograms of durations in `_duration_seconds`) and every series
//! carries the `agent_id` label: the families of one agent's parts carry
//! it themselves, the others (policy, approvals, audit, build, process,
//! readiness, kernel maps) get it from their registry. No label takes
//! values from outside a fixed set or the policy.

mod readiness;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use prometheus::{
    Encoder, Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
    process_collector::ProcessCollector,
};

pub use readiness::{Check, Readiness};

use crate::{
    approvals::ApprovalMetrics,
    audit::{AuditMetrics, ship::ShipMetrics},
    dns::{AgentDnsMetrics, DnsMetrics},
    events::{ActionEvent, ActionSink},
    gateway::GatewayMetrics,
    inventory::InventoryMetrics,
    kernel::{KernelCounters, events::DenyRecord},
    policy::PolicyVersion,
    proxy::ProxyMetrics,
    webhook::DeliveryMetrics,
};

/// Every metric the sidecar exports.
pub struct Metrics {
    /// Families with an `agent_id` label of their own.
    registry: Registry,
    /// Families that get `agent_id` from the registry.
    scoped: Registry,
    readiness: Readiness,
    quarantined: IntGauge,
    map_entries: IntGaugeVec,
    map_capacity: IntGaugeVec,
    egress_denied: IntCounterVec,
    kernel_decisions: IntCounterVec,
    allowlist_entries: IntGaugeVec,
    confinement_missing: IntCounterVec,
    detection_alerts: IntCounterVec,
    alert_deliveries: IntCounterVec,
    webhook_deliveries: IntCounterVec,
    baseline_store_errors: IntCounterVec,
    baseline_learned: IntGaugeVec,
    last_kernel: Mutex<KernelCounters>,
    policy: PolicyMetrics,
    gateway: GatewayMetrics,
    dns: DnsMetrics,
    proxy: Arc<ProxyMetrics>,
    approvals: ApprovalMetrics,
    audit: AuditMetrics,
    audit_ship: ShipMetrics,
    inventory: InventoryMetrics,
    kill_switch_engaged: IntGauge,
    kill_switch_events: IntCounterVec,
    grant_events: IntCounterVec,
    delegation_events: IntCounterVec,
}

/// Metrics of the tier policy store.
struct PolicyMetrics {
    reloads: IntCounterVec,
    refused: IntCounterVec,
    last_reload_success: IntGauge,
    last_reload_time: Gauge,
    version_info: IntGaugeVec,
}

impl PolicyMetrics {
    fn register(registry: &Registry) -> Self {
        let reloads = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_policy_reload_total",
                "Tier policy loads by result: success (a new set is in force), rollback \
                 (an earlier set was put back), failure (the set did not compile; the \
                 last-known-good set stays in force), refused (the set compiles but may be \
                 caught half-way through an update; the last-known-good set stays in force).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_policy_reload_refused_total",
                "Tier policy sets that compiled but were not put in force, by reason: \
                 manifest_mismatch (the SHA256SUMS manifest does not match the files), \
                 in_place_takes_away (files written in place would remove or loosen \
                 what is in force).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let last_reload_success = IntGauge::new(
            "agent_sidecar_policy_last_reload_success",
            "1 if the last tier policy load succeeded, 0 if it failed (the previous set is in force).",
        )
        .expect("valid metric");
        let last_reload_time = Gauge::new(
            "agent_sidecar_policy_last_reload_timestamp_seconds",
            "Unix time at which the policy set in force was put in force (a load or a \
             rollback that succeeded).",
        )
        .expect("valid metric");
        let version_info = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_policy_version_info",
                "The tier policy version in force (content hash prefix and label); always 1.",
            ),
            &["version", "label"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(reloads.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(refused.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(last_reload_success.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(version_info.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(last_reload_time.clone()))
            .expect("unique metric");
        Self {
            reloads,
            refused,
            last_reload_success,
            last_reload_time,
            version_info,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers all metrics, with no `agent_id` on the families that take
    /// it from the registry (library use and tests); `run` uses
    /// [`Metrics::for_agent`].
    pub fn new() -> Self {
        Self::for_agent("")
    }

    /// The registry of families labelled with the agent's id by the
    /// registry (for modules that register their own families).
    pub(crate) fn scoped_registry(&self) -> &Registry {
        &self.scoped
    }

    /// Registers all metrics of the sidecar of `agent_id`.
    pub fn for_agent(agent_id: &str) -> Self {
        let registry = Registry::new();
        let scoped = if agent_id.is_empty() {
            Registry::new()
        } else {
            Registry::new_custom(
                None,
                Some(HashMap::from([(
                    "agent_id".to_string(),
                    agent_id.to_string(),
                )])),
            )
            .expect("a valid label")
        };
        let build_info = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_build_info",
                "The sidecar's version (label version); always 1.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let quarantined = IntGauge::new(
            "agent_sidecar_quarantined",
            "1 while the agent is quarantined in the kernel (every packet dropped), else 0.",
        )
        .expect("valid metric");
        let map_entries = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_kernel_map_entries",
                "Entries in each kernel allowlist map (rules, learned destinations, the \
                 sidecar's endpoints), read at each scrape.",
            ),
            &["map"],
        )
        .expect("valid metric");
        let map_capacity = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_kernel_map_capacity",
                "Capacity of each kernel allowlist map; a policy that needs more is refused \
                 (fail closed).",
            ),
            &["map"],
        )
        .expect("valid metric");
        for c in [&build_info, &map_entries, &map_capacity] {
            scoped.register(Box::new(c.clone())).expect("unique metric");
        }
        scoped
            .register(Box::new(quarantined.clone()))
            .expect("unique metric");
        scoped
            .register(Box::new(ProcessCollector::new(
                std::process::id() as i32,
                "agent_sidecar",
            )))
            .expect("unique metric");
        let readiness = Readiness::register(&scoped);
        let egress_denied = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_egress_denied_total",
                "Egress attempts refused by the kernel hooks, per deny event received.",
            ),
            &["agent_id", "hook", "reason", "protocol"],
        )
        .expect("valid metric");
        let kernel_decisions = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_kernel_decisions_total",
                "Decisions counted inside the kernel programs (outcome: allowed, denied, \
                 skb_dropped, events_lost).",
            ),
            &["agent_id", "outcome"],
        )
        .expect("valid metric");
        let allowlist_entries = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_allowlist_entries",
                "Entries in the kernel egress allowlist.",
            ),
            &["agent_id"],
        )
        .expect("valid metric");
        let confinement_missing = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_confinement_missing_total",
                "Agents started without a confinement layer the kernel lacks, by layer \
                 (landlock_scopes: abstract unix sockets and signals); only with \
                 --allow-unscoped-agent.",
            ),
            &["agent_id", "layer"],
        )
        .expect("valid metric");
        let detection_alerts = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_detection_alerts_total",
                "Behavioural alerts raised, by detector and the response the policy gave                  it (notify, raise_tier, quarantine), and whether the response was applied                  (false: it could not act; see the detector response log line).",
            ),
            &["agent_id", "detector", "response", "applied"],
        )
        .expect("valid metric");
        let alert_deliveries = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_alert_deliveries_total",
                "Behavioural alert deliveries by sink (syslog) and outcome: sent, failed \
                 (an attempt that is retried from the disk queue), dropped (queue full or \
                 not writable).",
            ),
            &["agent_id", "sink", "outcome"],
        )
        .expect("valid metric");
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_webhook_deliveries_total",
                "Webhook event deliveries by webhook (sink: approver, owner, soc) and outcome: \
                 sent, failed (an attempt that is retried from the disk queue), rejected (a \
                 4xx answer: not sent again), queue_full (dropped before any attempt: the \
                 queue was full), dropped (the queue not writable, or every attempt failed).",
            ),
            &["agent_id", "sink", "outcome"],
        )
        .expect("valid metric");
        let baseline_store_errors = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_baseline_store_errors_total",
                "Behavioural baselines that could not be read (the agent learns anew: no \
                 alert until it has) or written (kept in memory, written again later).",
            ),
            &["agent_id"],
        )
        .expect("valid metric");
        let baseline_learned = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_baseline_learned",
                "1 when the agent's behavioural baseline has learned (its detectors may \
                 fire), 0 while it learns.",
            ),
            &["agent_id"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(baseline_learned.clone()))
            .expect("unique metric");
        for c in [
            &egress_denied,
            &kernel_decisions,
            &confinement_missing,
            &detection_alerts,
            &alert_deliveries,
            &webhook_deliveries,
            &baseline_store_errors,
        ] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(allowlist_entries.clone()))
            .expect("unique metric");
        let policy = PolicyMetrics::register(&scoped);
        let gateway = GatewayMetrics::register(&registry).expect("unique metric");
        let dns = DnsMetrics::register(&registry).expect("unique metric");
        let proxy = Arc::new(ProxyMetrics::register(&registry).expect("unique metric"));
        let approvals = ApprovalMetrics::register(&scoped).expect("unique metric");
        let audit = AuditMetrics::register(&scoped).expect("unique metric");
        let audit_ship = ShipMetrics::register(&scoped).expect("unique metric");
        let inventory = InventoryMetrics {
            info: IntGaugeVec::new(
                Opts::new(
                    "agent_sidecar_agent_info",
                    "The governed agent's inventory (owner, team, purpose, environment and \
                     the policy version in force, from the policy's agent document and the \
                     pod's annotations); always 1.",
                ),
                &["owner", "team", "purpose", "environment", "policy_version"],
            )
            .expect("valid metric"),
            last_action: Gauge::new(
                "agent_sidecar_agent_last_action_timestamp_seconds",
                "Unix time of the agent's last action (a tool call, connection, DNS \
                 question or refused connect); absent until it acts.",
            )
            .expect("valid metric"),
        };
        scoped
            .register(Box::new(inventory.info.clone()))
            .expect("unique metric");
        let kill_switch_engaged = IntGauge::new(
            "agent_sidecar_kill_switch_engaged",
            "1 while a kill switch covers the agent (every call refused, every packet dropped), else 0.",
        )
        .expect("valid metric");
        let kill_switch_events = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_kill_switch_events_total",
                "Kill switch steps: tripped (on this sidecar), engaged, released, \
                 controls_refused (the fleet-controls file changed but was invalid or \
                 unreadable; the last good switches stay in force).",
            ),
            &["step"],
        )
        .expect("valid metric");
        scoped
            .register(Box::new(kill_switch_engaged.clone()))
            .expect("unique metric");
        scoped
            .register(Box::new(kill_switch_events.clone()))
            .expect("unique metric");
        let grant_events = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_grant_events_total",
                "Just-in-time grant steps: requested, approved, denied, revoked, expired, \
                 refused (a request or decision outside the policy's bounds).",
            ),
            &["step"],
        )
        .expect("valid metric");
        scoped
            .register(Box::new(grant_events.clone()))
            .expect("unique metric");
        let delegation_events = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_delegations_total",
                "Hops between agents: step minted (caller), admitted or refused \
                 (callee, reason: missing_identity, missing_token, signature, delegator, \
                 audience, expired, replay, malformed, not_accepted), answer_refused \
                 (caller: the answer failed its schema).",
            ),
            &["step", "reason"],
        )
        .expect("valid metric");
        scoped
            .register(Box::new(delegation_events.clone()))
            .expect("unique metric");
        scoped
            .register(Box::new(inventory.last_action.clone()))
            .expect("unique metric");
        Self {
            registry,
            scoped,
            readiness,
            quarantined,
            map_entries,
            map_capacity,
            egress_denied,
            kernel_decisions,
            allowlist_entries,
            confinement_missing,
            detection_alerts,
            alert_deliveries,
            webhook_deliveries,
            baseline_store_errors,
            baseline_learned,
            last_kernel: Mutex::new(KernelCounters::default()),
            policy,
            gateway,
            dns,
            proxy,
            approvals,
            audit,
            audit_ship,
            inventory,
            kill_switch_engaged,
            kill_switch_events,
            grant_events,
            delegation_events,
        }
    }

    /// The inventory's series (`agent_sidecar_agent_info`,
    /// `agent_sidecar_agent_last_action_timestamp_seconds`).
    pub fn inventory(&self) -> InventoryMetrics {
        self.inventory.clone()
    }

    /// Where `agent_id`'s webhooks count their deliveries
    /// (`agent_sidecar_webhook_deliveries_total`).
    pub fn webhook_deliveries(&self, agent_id: &str) -> Arc<dyn DeliveryMetrics> {
        Arc::new(WebhookDeliveries {
            counter: self.webhook_deliveries.clone(),
            agent_id: agent_id.to_string(),
        })
    }

    /// What `/readyz` reports.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Records whether the agent is quarantined in the kernel.
    pub fn set_quarantined(&self, on: bool) {
        self.quarantined.set(i64::from(on));
    }

    /// Records the entries of each kernel allowlist map and its capacity.
    pub fn set_map_occupancy(&self, maps: &[(&str, usize, u32)]) {
        for (map, n, capacity) in maps {
            self.map_entries
                .with_label_values(&[map])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
            self.map_capacity
                .with_label_values(&[map])
                .set(i64::from(*capacity));
        }
    }

    /// The audit trail's metrics.
    pub fn audit(&self) -> AuditMetrics {
        self.audit.clone()
    }

    /// The audit shipper's metrics (queue depth, lag, results per
    /// destination).
    pub fn audit_ship(&self) -> ShipMetrics {
        self.audit_ship.clone()
    }

    /// Counts an agent started without the confinement `layer`.
    pub fn confinement_missing(&self, agent_id: &str, layer: &str) {
        self.confinement_missing
            .with_label_values(&[agent_id, layer])
            .inc();
    }

    /// The tool gateway's metrics (a sink for its events).
    pub fn gateway(&self) -> GatewayMetrics {
        self.gateway.clone()
    }

    /// The series of `agent_id`'s DNS resolver
    /// (`agent_sidecar_dns_*`).
    pub fn dns(&self, agent_id: &str) -> AgentDnsMetrics {
        self.dns.for_agent(agent_id)
    }

    /// The proxy listeners' metrics (`agent_sidecar_proxy_*`).
    pub fn proxy(&self) -> Arc<ProxyMetrics> {
        Arc::clone(&self.proxy)
    }

    /// The approvals store's metrics.
    pub fn approvals(&self) -> ApprovalMetrics {
        self.approvals.clone()
    }

    /// Counts a tier policy load (`success`, `rollback` or `failure`); on
    /// success or rollback, `version` is the set now in force.
    pub fn policy_reloaded(&self, result: &str, version: Option<&PolicyVersion>) {
        let p = &self.policy;
        p.reloads.with_label_values(&[result]).inc();
        match version {
            Some(v) => {
                p.last_reload_success.set(1);
                p.last_reload_time.set(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                );
                p.version_info.reset();
                p.version_info
                    .with_label_values(&[v.short(), v.label.as_ref()])
                    .set(1);
            }
            None => p.last_reload_success.set(0),
        }
    }

    /// Counts a policy set that compiled but was not put in force
    /// (`reason`: see `agent_sidecar_policy_reload_refused_total`).
    pub fn policy_reload_refused(&self, reason: &str) {
        let p = &self.policy;
        p.reloads.with_label_values(&["refused"]).inc();
        p.refused.with_label_values(&[reason]).inc();
        p.last_reload_success.set(0);
    }

    /// Counts one deny event.
    pub fn record_deny(&self, agent_id: &str, r: &DenyRecord) {
        self.egress_denied
            .with_label_values(&[agent_id, r.hook, r.reason, &r.protocol])
            .inc();
    }

    /// Sets the allowlist size.
    pub fn set_allowlist_entries(&self, agent_id: &str, n: usize) {
        self.allowlist_entries
            .with_label_values(&[agent_id])
            .set(n as i64);
    }

    /// Advances the kernel counters to the totals read from the maps.
    pub fn observe_kernel(&self, agent_id: &str, now: KernelCounters) {
        let mut last = self.last_kernel.lock().expect("metrics lock");
        for (outcome, new, old) in [
            ("allowed", now.allowed, last.allowed),
            ("denied", now.denied, last.denied),
            ("skb_dropped", now.skb_dropped, last.skb_dropped),
            ("events_lost", now.events_lost, last.events_lost),
        ] {
            self.kernel_decisions
                .with_label_values(&[agent_id, outcome])
                .inc_by(new.saturating_sub(old));
        }
        *last = now;
    }

    /// The Prometheus text exposition, families sorted by name.
    pub fn render(&self) -> String {
        let mut families = self.registry.gather();
        families.extend(self.scoped.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut buf)
            .expect("encode metrics");
        String::from_utf8(buf).expect("utf-8 metrics")
    }
}

/// The metrics fed by the action events: tool calls and dropped MCP
/// messages (`agent_sidecar_gateway_*`) and kernel refusals
/// (`agent_sidecar_egress_denied_total`). The resolver and the proxies
/// count their own decisions where they take them.
impl ActionSink for Metrics {
    fn consume(&self, event: ActionEvent<'_>) {
        match event {
            ActionEvent::ToolCall(e) => self.gateway.call(e),
            ActionEvent::McpMessageDropped(d) => {
                self.gateway
                    .mcp_message_dropped(d.agent_id, d.direction, d.reason)
            }
            ActionEvent::KernelDeny(d) => self.record_deny(d.agent_id, d.record),
            ActionEvent::Response(r) => {
                self.detection_alerts
                    .with_label_values(&[
                        r.agent_id.as_str(),
                        r.detector.as_str(),
                        r.response.as_str(),
                        if r.applied { "true" } else { "false" },
                    ])
                    .inc();
            }
            ActionEvent::KillSwitch(k) => {
                use crate::fleet::KillSwitchStep as S;
                let step = match k.step {
                    S::Tripped => "tripped",
                    S::Engaged => "engaged",
                    S::Released => "released",
                    S::ControlsRefused => "controls_refused",
                };
                self.kill_switch_events.with_label_values(&[step]).inc();
                match k.step {
                    S::Engaged => self.kill_switch_engaged.set(1),
                    S::Released => self.kill_switch_engaged.set(0),
                    _ => {}
                }
            }
            ActionEvent::Grant(g) => {
                self.grant_events
                    .with_label_values(&[g.step.as_str()])
                    .inc();
            }
            ActionEvent::Delegation(d) => {
                self.delegation_events
                    .with_label_values(&[d.step.as_str(), d.reason.unwrap_or("")])
                    .inc();
            }
            _ => {}
        }
    }
}

impl crate::detect::DetectionMetrics for Metrics {
    fn alert_delivery(&self, agent_id: &str, sink: &str, outcome: &str) {
        self.alert_deliveries
            .with_label_values(&[agent_id, sink, outcome])
            .inc();
    }

    fn baseline_store_error(&self, agent_id: &str) {
        self.baseline_store_errors
            .with_label_values(&[agent_id])
            .inc();
    }

    fn baseline_learned(&self, agent_id: &str, learned: bool) {
        self.baseline_learned
            .with_label_values(&[agent_id])
            .set(i64::from(learned));
    }
}

/// [`Metrics::webhook_deliveries`].
struct WebhookDeliveries {
    counter: IntCounterVec,
    agent_id: String,
}

impl DeliveryMetrics for WebhookDeliveries {
    fn delivery(&self, sink: &str, outcome: &str) {
        self.counter
            .with_label_values(&[self.agent_id.as_str(), sink, outcome])
            .inc();
    }
}

impl crate::policy::reload::ReloadObserver for Metrics {
    fn reloaded(&self, result: &str, version: Option<&PolicyVersion>) {
        self.policy_reloaded(result, version);
    }

    fn refused(&self, reason: &str) {
        self.policy_reload_refused(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_health_is_exported() {
        use crate::detect::DetectionMetrics;
        let m = Metrics::new();
        m.alert_delivery("a", "syslog", "dropped");
        m.baseline_store_error("a");
        m.baseline_learned("a", true);
        let text = m.render();
        for line in [
            "agent_sidecar_alert_deliveries_total{agent_id=\"a\",outcome=\"dropped\",sink=\"syslog\"} 1",
            "agent_sidecar_baseline_store_errors_total{agent_id=\"a\"} 1",
            "agent_sidecar_baseline_learned{agent_id=\"a\"} 1",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
    }

    #[test]
    fn detector_responses_are_counted_by_detector_response_and_outcome() {
        use crate::{
            approvals::UnixMillis,
            events::DetectionResponse,
            policy::detection::{DetectorKind, Response},
        };
        let m = Metrics::new();
        let mut r = DetectionResponse {
            at: UnixMillis(0),
            agent_id: "a".into(),
            alert_id: "alr_1".into(),
            detector: DetectorKind::NewTool,
            response: Response::RaiseTier,
            min_tier: None,
            until: None,
            applied: true,
            error: None,
        };
        m.consume(ActionEvent::Response(&r));
        r.applied = false;
        m.consume(ActionEvent::Response(&r));
        m.consume(ActionEvent::Response(&r));
        let text = m.render();
        for (applied, n) in [("true", 1), ("false", 2)] {
            let line = format!(
                "agent_sidecar_detection_alerts_total{{agent_id=\"a\",applied=\"{applied}\",detector=\"new_tool\",response=\"raise_tier\"}} {n}"
            );
            assert!(text.contains(&line), "{line} not in:\n{text}");
        }
    }

    #[test]
    fn every_family_carries_the_agent_id_and_readiness_needs_every_check() {
        let m = Metrics::for_agent("billing");
        m.policy_reloaded("success", None);
        m.set_quarantined(true);
        m.set_map_occupancy(&[("EXACT", 3, 10)]);
        let text = m.render();
        for line in [
            "agent_sidecar_build_info{version=\"",
            "agent_sidecar_quarantined{agent_id=\"billing\"} 1",
            "agent_sidecar_kernel_map_entries{map=\"EXACT\",agent_id=\"billing\"} 3",
            "agent_sidecar_kernel_map_capacity{map=\"EXACT\",agent_id=\"billing\"} 10",
            "agent_sidecar_policy_reload_total{result=\"success\",agent_id=\"billing\"} 1",
            "agent_sidecar_process_resident_memory_bytes{agent_id=\"billing\"}",
            "agent_sidecar_ready{check=\"policies_loaded\",agent_id=\"billing\"} 0",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(l.starts_with("agent_sidecar_"), "{l}");
            assert!(l.contains("agent_id=\"billing\""), "{l}");
        }
        let r = m.readiness();
        assert!(!r.report().0);
        r.set(Check::ProgramsAttached, true);
        r.set(Check::ResolverListening, true);
        assert!(!r.report().0, "policies not loaded yet");
        r.set(Check::PoliciesLoaded, true);
        let (ready, text) = r.report();
        assert!(ready, "{text}");
        assert_eq!(
            text,
            "programs_attached ok\nresolver_listening ok\npolicies_loaded ok\n"
        );
        r.set(Check::ResolverListening, false);
        assert!(!r.report().0);
    }

    #[test]
    fn kernel_counters_advance_by_delta() {
        let m = Metrics::new();
        m.observe_kernel(
            "a",
            KernelCounters {
                allowed: 5,
                denied: 2,
                ..Default::default()
            },
        );
        m.observe_kernel(
            "a",
            KernelCounters {
                allowed: 7,
                denied: 2,
                ..Default::default()
            },
        );
        let text = m.render();
        assert!(
            text.contains(
                r#"agent_sidecar_kernel_decisions_total{agent_id="a",outcome="allowed"} 7"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"agent_sidecar_kernel_decisions_total{agent_id="a",outcome="denied"} 2"#
            ),
            "{text}"
        );
    }
}
