//! Replays a generated fortnight of two agents' action events (a support
//! agent and a procurement agent, seeded, with a working-day rhythm)
//! through the event bus into the detectors, then injects attacks: each
//! must raise its alert exactly once, with its evidence, and the normal
//! days none at all.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use agent_sidecar::{
    approvals::UnixMillis,
    detect::{Activity, Alert, AlertSink, Detection, DetectionOptions, Pattern},
    events::{ActionSink, EventBus},
    gateway::{CallOutcome, ToolCallEvent},
    kernel::events::DenyRecord,
    policy::{
        Action, ActionTarget, AgentIdentity, Attributes, Decision, Money, PolicyVersion, Tier,
        detection::{DetectionPolicy, DetectorKind},
    },
    proxy::{ConnectionOutcome, ListenerKind, ProxyEvent},
};

const MIN: u64 = 60_000;
const H: u64 = 3_600_000;
const DAY: u64 = 24 * H;
/// Monday 2026-01-05 00:00 UTC.
const MONDAY: u64 = 1_767_571_200_000;
const SUPPORT: &str = "support-1";
const PROCURE: &str = "procure-1";
/// Days replayed as normal: 0-6 learn, 7-14 are judged.
const NORMAL_DAYS: u64 = 15;
const LEARNING_DAYS: u64 = 7;

/// splitmix64: a seeded generator for the test's traffic (not crypto).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Poisson(mean), Knuth's method.
    fn poisson(&mut self, mean: f64) -> u64 {
        let l = (-mean).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.unit();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
}

/// One action to replay.
#[derive(Clone, Debug)]
enum Ev {
    Call {
        agent: &'static str,
        at: u64,
        tool: &'static str,
        action: &'static str,
        host: &'static str,
        tier: Tier,
        amount: Option<f64>,
    },
    Conn {
        agent: &'static str,
        at: u64,
        host: &'static str,
        bytes: u64,
        allowed: bool,
    },
    Deny {
        agent: &'static str,
        at: u64,
        port: u16,
    },
}

impl Ev {
    fn at(&self) -> u64 {
        match self {
            Ev::Call { at, .. } | Ev::Conn { at, .. } | Ev::Deny { at, .. } => *at,
        }
    }
}

const ZENDESK: &str = "acme.zendesk.example";
const CRM: &str = "crm.acme.example";
const KB: &str = "acme-mcp";
const PAY: &str = "payments.acme.example";
const ERP: &str = "erp.acme.example";
const DB: &str = "db.acme.example";
const MAIL: &str = "mail.acme.example";

fn call(
    agent: &'static str,
    at: u64,
    tool: &'static str,
    action: &'static str,
    host: &'static str,
) -> Ev {
    Ev::Call {
        agent,
        at,
        tool,
        action,
        host,
        tier: Tier::Autonomous,
        amount: None,
    }
}

/// A support session: read the ticket and the customer, maybe search the
/// knowledge base, maybe refund (once or twice), reply.
fn support_session(r: &mut Rng, start: u64, out: &mut Vec<Ev>) {
    let mut t = start;
    let step = |r: &mut Rng, e: Ev, out: &mut Vec<Ev>, t: &mut u64| {
        out.push(e);
        *t += r.range(20, 90) * 1000;
    };
    let host_bytes = |r: &mut Rng, at: u64, host: &'static str, out: &mut Vec<Ev>| {
        out.push(Ev::Conn {
            agent: SUPPORT,
            at: at + 500,
            host,
            bytes: r.range(2_000, 20_000),
            allowed: true,
        });
    };
    let e = call(SUPPORT, t, "zendesk", "get_ticket", ZENDESK);
    host_bytes(r, t, ZENDESK, out);
    step(r, e, out, &mut t);
    let e = call(SUPPORT, t, "crm", "get_customer", CRM);
    host_bytes(r, t, CRM, out);
    step(r, e, out, &mut t);
    if r.chance(0.6) {
        let e = call(SUPPORT, t, "kb", "search_articles", KB);
        step(r, e, out, &mut t);
    }
    if r.chance(0.3) {
        let n = if r.chance(0.2) { 2 } else { 1 };
        for _ in 0..n {
            let amount = r.range(10, 80) as f64;
            let e = Ev::Call {
                agent: SUPPORT,
                at: t,
                tool: "payments",
                action: "refund",
                host: PAY,
                tier: Tier::Supervised,
                amount: Some(amount),
            };
            host_bytes(r, t, PAY, out);
            step(r, e, out, &mut t);
        }
    }
    let e = call(SUPPORT, t, "zendesk", "reply_ticket", ZENDESK);
    host_bytes(r, t, ZENDESK, out);
    step(r, e, out, &mut t);
}

/// A procurement session: check stock, search suppliers, get a quote,
/// order (tier 2, or tier 3 above the limit), send the order by mail.
fn procure_session(r: &mut Rng, start: u64, out: &mut Vec<Ev>) {
    let mut t = start;
    let mut push = |e: Ev, r: &mut Rng, out: &mut Vec<Ev>| {
        out.push(e);
        t += r.range(30, 120) * 1000;
        t
    };
    let mut at = start;
    at = push(call(PROCURE, at, "db", "read_database", DB), r, out);
    at = push(call(PROCURE, at, "erp", "search_suppliers", ERP), r, out);
    at = push(call(PROCURE, at, "erp", "get_quote", ERP), r, out);
    if r.chance(0.7) {
        let amount = r.range(200, 5000) as f64;
        let tier = if amount > 3000.0 {
            Tier::Approval
        } else {
            Tier::Supervised
        };
        let e = Ev::Call {
            agent: PROCURE,
            at,
            tool: "erp",
            action: "create_po",
            host: ERP,
            tier,
            amount: Some(amount),
        };
        at = push(e, r, out);
        let _ = push(call(PROCURE, at, "mail", "send_email", MAIL), r, out);
    }
    out.push(Ev::Conn {
        agent: PROCURE,
        at: start + 1000,
        host: ERP,
        bytes: r.range(5_000, 60_000),
        allowed: true,
    });
}

/// One normal day of both agents.
fn normal_day(r: &mut Rng, day: u64) -> Vec<Ev> {
    let mut out = Vec::new();
    let start = MONDAY + day * DAY;
    let weekday = day % 7 < 5;
    // Support: weekdays 8-18 with two peaks, weekends 10-16 quietly.
    let support: &[(u64, f64)] = if weekday {
        &[
            (8, 2.0),
            (9, 3.0),
            (10, 4.0),
            (11, 4.0),
            (12, 2.0),
            (13, 3.0),
            (14, 4.0),
            (15, 3.0),
            (16, 3.0),
            (17, 2.0),
        ]
    } else {
        &[
            (10, 1.0),
            (11, 1.0),
            (12, 1.0),
            (13, 1.0),
            (14, 1.0),
            (15, 1.0),
        ]
    };
    // Each agent works one task at a time: a session starts at its
    // random time or when the last one ended, whichever is later.
    let mut busy = 0;
    for &(hour, mean) in support {
        let mut starts: Vec<u64> = (0..r.poisson(mean))
            .map(|_| start + hour * H + r.range(0, 50) * MIN)
            .collect();
        starts.sort_unstable();
        for at in starts {
            let from = out.len();
            support_session(r, at.max(busy), &mut out);
            busy = out[from..].iter().map(Ev::at).max().unwrap_or(busy) + MIN;
        }
    }
    // Procurement: weekdays 9-17 only.
    if weekday {
        let mut busy = 0;
        for hour in 9..17 {
            let mut starts: Vec<u64> = (0..r.poisson(1.5))
                .map(|_| start + hour * H + r.range(0, 50) * MIN)
                .collect();
            starts.sort_unstable();
            for at in starts {
                let from = out.len();
                procure_session(r, at.max(busy), &mut out);
                busy = out[from..].iter().map(Ev::at).max().unwrap_or(busy) + MIN;
            }
        }
    }
    // The odd refused connection (a library phoning home).
    for agent in [SUPPORT, PROCURE] {
        for _ in 0..r.poisson(1.0) {
            let at = start + r.range(9, 16) * H + r.range(0, 59) * MIN;
            out.push(Ev::Deny {
                agent,
                at,
                port: 443,
            });
        }
    }
    out.sort_by_key(Ev::at);
    out
}

#[derive(Default)]
struct Collect(Mutex<Vec<(Alert, Activity)>>);

impl AlertSink for Collect {
    fn deliver(&self, alert: &Alert, activity: Activity) {
        self.0.lock().unwrap().push((alert.clone(), activity));
    }
}

struct Replay {
    bus: EventBus,
    detection: Detection,
    alerts: Arc<Collect>,
    now: Arc<AtomicU64>,
    n: u64,
}

impl Replay {
    fn new() -> Self {
        let alerts = Arc::new(Collect::default());
        let now = Arc::new(AtomicU64::new(MONDAY));
        let clock = now.clone();
        let policy = Arc::new(DetectionPolicy::default());
        let detection = Detection::new(DetectionOptions {
            policy: Arc::new(move |_| policy.clone()),
            store: None,
            sinks: vec![alerts.clone() as Arc<dyn AlertSink>],
            responder: None,
            clock: Some(Arc::new(move || clock.load(Ordering::Relaxed))),
        });
        let bus = EventBus::new(vec![Arc::new(detection.clone()) as Arc<dyn ActionSink>]);
        Replay {
            bus,
            detection,
            alerts,
            now,
            n: 0,
        }
    }

    fn play(&mut self, events: &[Ev]) {
        for e in events {
            self.now.store(e.at(), Ordering::Relaxed);
            self.n += 1;
            match e {
                Ev::Call {
                    agent,
                    at,
                    tool,
                    action,
                    host,
                    tier,
                    amount,
                } => {
                    let ev = tool_call(self.n, agent, *at, tool, action, host, *tier, *amount);
                    agent_sidecar::gateway::GatewaySink::call(&self.bus, &ev);
                }
                Ev::Conn {
                    agent,
                    at,
                    host,
                    bytes,
                    allowed,
                } => {
                    let ev = connection(agent, *at, host, *bytes, *allowed);
                    agent_sidecar::proxy::ProxyEventSink::emit(&self.bus, &ev);
                }
                Ev::Deny { agent, port, .. } => {
                    self.bus.kernel_deny(agent, &deny(self.n, *port));
                }
            }
        }
    }

    /// Alerts raised (created) at or after `from`, by agent and detector.
    fn created_since(&self, from: u64) -> Vec<Alert> {
        self.alerts
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, act)| *act == Activity::Create && a.first_ms >= from)
            .map(|(a, _)| a.clone())
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn tool_call(
    n: u64,
    agent: &str,
    at: u64,
    tool: &str,
    action: &str,
    host: &str,
    tier: Tier,
    amount: Option<f64>,
) -> ToolCallEvent {
    ToolCallEvent {
        at: UnixMillis(at),
        transport: "http",
        action: Action {
            agent: AgentIdentity {
                id: agent.into(),
                environment: "prod".into(),
                owner: Some("owner@acme.example".into()),
                team: None,
                purpose: None,
            },
            tool: Some(tool.into()),
            action: Some(action.into()),
            target: Some(ActionTarget::Http {
                host: host.into(),
                method: "POST".into(),
                path: format!("/{action}"),
            }),
            attributes: Attributes {
                amount: amount.map(|value| Money {
                    value,
                    currency: None,
                }),
                ..Attributes::default()
            },
        },
        decision: Decision {
            tier,
            rules: Vec::new(),
            policy_version: PolicyVersion {
                hash: "0".repeat(64).into(),
                label: "replay".into(),
            },
            reason: "replay".into(),
            quarantine: false,
        },
        outcome: CallOutcome::Forwarded,
        reason: None,
        upstream_status: Some(200),
        approval_id: None,
        compensation_id: (tier == Tier::Supervised).then(|| format!("cmp_{n:032x}")),
        traceparent: format!("00-{:032x}-{:016x}-01", n + 1, n + 1),
        caller_span: None,
        duration_us: 1000,
        shown: None,
        compensation: None,
        input: None,
    }
}

fn connection(agent: &str, at: u64, host: &str, bytes: u64, allowed: bool) -> ProxyEvent {
    ProxyEvent {
        time_unix_ms: at,
        agent_id: agent.into(),
        listener: ListenerKind::Transparent,
        client: "10.0.0.2:40000".parse().unwrap(),
        host: Some(host.into()),
        port: 443,
        sni: Some(host.into()),
        ech: false,
        decision: if allowed {
            ConnectionOutcome::Allowed
        } else {
            ConnectionOutcome::Refused
        },
        reason: (!allowed).then(|| "not_allowlisted".into()),
        rule: None,
        upstream: None,
        bytes_up: bytes / 4,
        bytes_down: bytes - bytes / 4,
        duration_us: 1000,
    }
}

fn deny(n: u64, port: u16) -> DenyRecord {
    DenyRecord {
        hook: "connect4",
        reason: "not_allowlisted",
        pid: 4242,
        uid: 1000,
        gid: 1000,
        comm: "python3".into(),
        cgroup_id: 7,
        destination: Some(SocketAddr::from(([203, 0, 113, (n % 250) as u8], port))),
        protocol: "tcp".into(),
        family: 2,
        sock_type: 1,
        boot_ns: n,
    }
}

/// The normal fortnight (and one more day), replayed into a new engine.
fn fortnight() -> (Replay, Vec<Ev>) {
    fortnight_of(0x5eed_2026)
}

fn fortnight_of(seed: u64) -> (Replay, Vec<Ev>) {
    let mut r = Rng(seed);
    let mut replay = Replay::new();
    for day in 0..NORMAL_DAYS - 1 {
        let events = normal_day(&mut r, day);
        replay.play(&events);
    }
    // The attack day's normal traffic, for the attacks to hide in.
    let day = normal_day(&mut r, NORMAL_DAYS - 1);
    (replay, day)
}

fn merge(mut normal: Vec<Ev>, attack: Vec<Ev>) -> Vec<Ev> {
    normal.extend(attack);
    normal.sort_by_key(Ev::at);
    normal
}

#[test]
fn a_normal_fortnight_raises_no_alert_after_learning() {
    let (mut replay, day) = fortnight();
    replay.play(&day);
    let learned_at = MONDAY + LEARNING_DAYS * DAY;
    for agent in [SUPPORT, PROCURE] {
        let (learned, events) = replay
            .detection
            .with_state(agent, |s| (s.baseline().learned(), s.baseline().events()))
            .unwrap();
        assert!(learned, "{agent} still learning after {events} events");
    }
    let alerts = replay.created_since(0);
    let judged_days = (NORMAL_DAYS - LEARNING_DAYS) * 2;
    println!(
        "normal replay: {} events, {} alerts over {judged_days} agent-days after learning: {:.3} false positives per agent-day",
        replay.n,
        alerts.len(),
        alerts.len() as f64 / judged_days as f64
    );
    assert!(
        alerts.iter().all(|a| a.first_ms >= learned_at),
        "alerted while learning"
    );
    assert!(
        alerts.is_empty(),
        "false positives: {:#?}",
        alerts
            .iter()
            .map(|a| (a.agent_id.clone(), a.summary()))
            .collect::<Vec<_>>()
    );
    let (agents, bytes) = replay.detection.footprint();
    println!("footprint: {agents} agents, {bytes} bytes of baselines and alerts");
}

/// The false-positive rate over other seeds: reported, and bounded so a
/// regression shows (the seeded replay above must stay at 0).
#[test]
fn false_positives_over_twenty_other_fortnights_are_rare() {
    let (mut alerts, mut agent_days) = (Vec::new(), 0);
    for seed in 1..=20 {
        let (mut replay, day) = fortnight_of(seed);
        replay.play(&day);
        alerts.extend(replay.created_since(0));
        agent_days += (NORMAL_DAYS - LEARNING_DAYS) * 2;
    }
    let rate = alerts.len() as f64 / agent_days as f64;
    println!(
        "20 fortnights: {} alerts over {agent_days} agent-days: {rate:.4} per agent-day; {:?}",
        alerts.len(),
        by_detector(&alerts)
    );
    assert!(rate <= 0.05, "{rate} false positives per agent-day");
}

/// Runs `attack` on the attack day; returns the alerts it raised.
fn attack(events: Vec<Ev>) -> Vec<Alert> {
    let (mut replay, day) = fortnight();
    let from = MONDAY + (NORMAL_DAYS - 1) * DAY;
    replay.play(&merge(day, events));
    replay.detection.close();
    replay.created_since(from)
}

fn by_detector(alerts: &[Alert]) -> BTreeMap<(String, DetectorKind), usize> {
    let mut m = BTreeMap::new();
    for a in alerts {
        *m.entry((a.agent_id.clone(), a.detector)).or_default() += 1;
    }
    m
}

fn expect(alerts: &[Alert], want: &[(&str, DetectorKind)]) {
    let got = by_detector(alerts);
    let want: BTreeMap<(String, DetectorKind), usize> =
        want.iter().map(|(a, d)| ((a.to_string(), *d), 1)).collect();
    assert_eq!(
        got,
        want,
        "{:#?}",
        alerts.iter().map(Alert::summary).collect::<Vec<_>>()
    );
}

const ATTACK_DAY: u64 = MONDAY + (NORMAL_DAYS - 1) * DAY;

#[test]
fn exfiltration_to_a_new_host_is_a_new_destination_and_a_volume_surge() {
    let t = ATTACK_DAY + 11 * H + 7 * MIN;
    let alerts = attack(vec![
        Ev::Conn {
            agent: SUPPORT,
            at: t,
            host: "paste.evil.example",
            bytes: 20_000_000,
            allowed: true,
        },
        Ev::Conn {
            agent: SUPPORT,
            at: t + MIN,
            host: "paste.evil.example",
            bytes: 20_000_000,
            allowed: true,
        },
    ]);
    expect(
        &alerts,
        &[
            (SUPPORT, DetectorKind::NewDestination),
            (SUPPORT, DetectorKind::VolumeSurge),
        ],
    );
    let d = alerts
        .iter()
        .find(|a| a.detector == DetectorKind::NewDestination)
        .unwrap();
    assert_eq!(d.subject, "paste.evil.example");
    assert_eq!(d.pattern, Pattern::Unseen);
    assert_eq!(
        d.events[0].destination.as_deref(),
        Some("paste.evil.example")
    );
    let v = alerts
        .iter()
        .find(|a| a.detector == DetectorKind::VolumeSurge)
        .unwrap();
    assert!(
        v.observed > v.threshold && v.threshold > v.baseline,
        "{v:?}"
    );
}

#[test]
fn a_burst_of_small_refunds_over_the_daily_norm_is_one_amount_surge() {
    // From 13:00 the injected agent works three "tickets" that each end
    // in 25 refunds of 29, each far under any per-call limit, in the
    // shape of its normal sessions (ticket, customer, refunds, reply).
    let mut events = Vec::new();
    let mut r = Rng(7);
    for s in 0..3 {
        let mut t = ATTACK_DAY + 13 * H + s * 40 * MIN;
        events.push(call(SUPPORT, t, "zendesk", "get_ticket", ZENDESK));
        t += 45_000;
        events.push(call(SUPPORT, t, "crm", "get_customer", CRM));
        for _ in 0..25 {
            t += r.range(20, 60) * 1000;
            events.push(Ev::Call {
                agent: SUPPORT,
                at: t,
                tool: "payments",
                action: "refund",
                host: PAY,
                tier: Tier::Supervised,
                amount: Some(29.0),
            });
        }
        events.push(call(
            SUPPORT,
            t + 30_000,
            "zendesk",
            "reply_ticket",
            ZENDESK,
        ));
    }
    let (mut replay, day) = fortnight();
    // The agent was busy with those from 13:00 to 15:30.
    let (from, to) = (ATTACK_DAY + 13 * H, ATTACK_DAY + 15 * H + 30 * MIN);
    let day = day
        .into_iter()
        .filter(|e| {
            let support = matches!(
                e,
                Ev::Call { agent: SUPPORT, .. } | Ev::Conn { agent: SUPPORT, .. }
            );
            !(support && (from - 31 * MIN..to).contains(&e.at()))
        })
        .collect();
    replay.play(&merge(day, events));
    replay.detection.close();
    let alerts = replay.created_since(ATTACK_DAY);
    expect(&alerts, &[(SUPPORT, DetectorKind::AmountSurge)]);
    let a = &alerts[0];
    assert!(
        a.observed > a.threshold && a.threshold > a.baseline,
        "{a:?}"
    );
    println!("refund burst: {}", a.summary());
    assert!(
        a.events[0]
            .record_id
            .as_deref()
            .unwrap()
            .starts_with("cmp_")
    );
    assert!(a.events[0].trace_id.is_some());
}

#[test]
fn a_new_tool_after_a_prompt_injection_is_one_new_tool_alert() {
    let t = ATTACK_DAY + 10 * H + 31 * MIN;
    let alerts = attack(
        (0..3)
            .map(|i| call(SUPPORT, t + i * 5000, "admin", "delete_user", KB))
            .collect(),
    );
    expect(&alerts, &[(SUPPORT, DetectorKind::NewTool)]);
    assert_eq!(alerts[0].subject, "admin");
}

#[test]
fn an_off_hours_run_is_one_off_hours_alert() {
    // Two of its normal sessions' openings, at 03:05 and 03:45.
    let mut events = Vec::new();
    for start in [5, 45] {
        let at = ATTACK_DAY + 3 * H + start * MIN;
        events.push(call(PROCURE, at, "db", "read_database", DB));
        events.push(call(PROCURE, at + 40_000, "erp", "search_suppliers", ERP));
        events.push(call(PROCURE, at + 90_000, "erp", "get_quote", ERP));
    }
    let alerts = attack(events);
    expect(&alerts, &[(PROCURE, DetectorKind::OffHours)]);
    assert_eq!(alerts[0].pattern, Pattern::OffHours);
    assert_eq!(alerts[0].baseline, 0.0);
}

#[test]
fn a_read_then_send_never_seen_is_one_new_transition() {
    let t = ATTACK_DAY + 11 * H + 52 * MIN;
    let alerts = attack(vec![
        call(PROCURE, t, "db", "read_database", DB),
        call(PROCURE, t + 20_000, "mail", "send_email", MAIL),
    ]);
    expect(&alerts, &[(PROCURE, DetectorKind::NewTransition)]);
    assert_eq!(alerts[0].subject, "db.read_database -> mail.send_email");
    assert_eq!(alerts[0].pattern, Pattern::Unseen);
}

#[test]
fn a_denied_egress_probe_loop_is_one_denied_burst_with_a_count() {
    let t = ATTACK_DAY + 13 * H + 20 * MIN;
    let mut events = Vec::new();
    for i in 0..60 {
        events.push(Ev::Deny {
            agent: SUPPORT,
            at: t + i * 2000,
            port: 1024 + i as u16,
        });
        if i % 3 == 0 {
            events.push(Ev::Conn {
                agent: SUPPORT,
                at: t + i * 2000 + 500,
                host: "c2.evil.example",
                bytes: 0,
                allowed: false,
            });
        }
    }
    let (mut replay, day) = fortnight();
    replay.play(&merge(day, events));
    replay.detection.close();
    let alerts = replay.created_since(ATTACK_DAY);
    expect(&alerts, &[(SUPPORT, DetectorKind::DeniedBurst)]);
    let updates: Vec<Alert> = replay
        .alerts
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(a, act)| *act == Activity::Update && a.id == alerts[0].id)
        .map(|(a, _)| a.clone())
        .collect();
    assert_eq!(updates.len(), 1, "the storm's count is delivered once");
    assert!(updates[0].count >= 2, "{:?}", updates[0]);
}
