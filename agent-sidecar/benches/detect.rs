//! Behavioural detectors benchmark (`harness = false`): what one action
//! event costs the detectors, and what 1,000 agents' baselines weigh.
//!
//! 1. Update cost: a learned baseline (a week of a support agent's
//!    rhythm), then a stream of normal events (tool calls of known actions,
//!    connections with bytes, the odd refused connect) through
//!    `Detection::observe`, one thread, the engine's lock and policy
//!    look-up included. Reported: nanoseconds per event, median of rounds.
//!    Target: at most 1 us.
//! 2. Memory: 1,000 agents, each with a learned week, in one engine:
//!    the heap estimate per agent and in all, against the documented bound
//!    (`MEMORY_BOUND_BYTES` per agent).
//!
//! Needs no privileges. Prints a Markdown report:
//! `cargo bench -p agent-sidecar --bench detect`.

use std::{
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use agent_sidecar::{
    detect::{Detection, DetectionOptions, MEMORY_BOUND_BYTES, Observation, ObservedKind},
    policy::{Tier, detection::DetectionPolicy},
};

const H: u64 = 3_600_000;
/// Monday 2026-01-05 00:00 UTC.
const MONDAY: u64 = 1_767_571_200_000;
const ROUNDS: usize = 9;
const EVENTS_PER_ROUND: usize = 200_000;
const AGENTS: usize = 1_000;
const TARGET_NS: f64 = 1_000.0;

const ACTIONS: [(&str, &str, &str); 5] = [
    ("zendesk", "get_ticket", "acme.zendesk.example"),
    ("crm", "get_customer", "crm.acme.example"),
    ("kb", "search_articles", "acme-mcp"),
    ("payments", "refund", "payments.acme.example"),
    ("zendesk", "reply_ticket", "acme.zendesk.example"),
];

fn engine() -> Detection {
    let policy = Arc::new(DetectionPolicy {
        learning: Duration::from_secs(6 * 86_400),
        min_learning_events: 100,
        ..DetectionPolicy::default()
    });
    Detection::new(DetectionOptions {
        policy: Arc::new(move |_| policy.clone()),
        store: None,
        sinks: Vec::new(),
        responder: None,
        clock: Some(Arc::new(|| MONDAY)),
    })
}

/// The `i`th event of a working day's stream starting at `day_start`.
fn event(i: usize, day_start: u64, per_day: usize) -> Observation<'static> {
    let at = day_start + 8 * H + (i % per_day) as u64 * (10 * H / per_day as u64);
    match i % 10 {
        8 => {
            let mut o = Observation::new(ObservedKind::Connection, at);
            o.destination = Some("crm.acme.example");
            o.bytes = 12_000;
            o
        }
        9 if i % 100 == 9 => {
            let mut o = Observation::new(ObservedKind::KernelDeny, at);
            o.denied_egress = true;
            o
        }
        _ => {
            let (tool, action, host) = ACTIONS[i % ACTIONS.len()];
            let mut o = Observation::new(ObservedKind::ToolCall, at);
            o.tool = Some(tool);
            o.action = Some(action);
            o.destination = Some(host);
            o.tier = Some(if action == "refund" {
                Tier::Supervised
            } else {
                Tier::Autonomous
            });
            o.amount = (action == "refund").then_some(40.0);
            o.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736");
            o
        }
    }
}

/// A week of 300 events a working day for `agent`.
fn learn(d: &Detection, agent: &str) {
    for day in 0..7u64 {
        if day % 7 >= 5 {
            continue;
        }
        for i in 0..300 {
            d.observe(agent, &event(i, MONDAY + day * 24 * H, 300));
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    // 1. Update cost.
    let d = engine();
    learn(&d, "support-1");
    let mut per_event = Vec::new();
    for round in 0..ROUNDS {
        // Each round replays working days after the learned week.
        let day_start = MONDAY + (7 + round as u64 * 7) * 24 * H;
        let events: Vec<Observation<'static>> = (0..EVENTS_PER_ROUND)
            .map(|i| event(i, day_start + (i / 20_000) as u64 * 24 * H, 20_000))
            .collect();
        let t = Instant::now();
        for o in &events {
            d.observe("support-1", o);
        }
        per_event.push(t.elapsed().as_nanos() as f64 / EVENTS_PER_ROUND as f64);
    }
    let ns = median(per_event.clone());
    // The learning period (6 days) ends with the first event of the first
    // round (the week's last working day ends 4.4 days after its first
    // event): every measured event but one is observed by a learned
    // baseline, with every detector on.
    let learned = d
        .with_state("support-1", |s| s.baseline().learned())
        .unwrap_or(false);

    // 2. Memory of 1,000 agents.
    let many = engine();
    let names: Vec<String> = (0..AGENTS).map(|i| format!("agent-{i:04}")).collect();
    for n in &names {
        learn(&many, n);
    }
    let (agents, bytes) = many.footprint();
    let per_agent = bytes / agents.max(1);

    println!("# Behavioural detectors\n");
    println!("| Figure | Value | Target |");
    println!("|---|---|---|");
    println!(
        "| Detector update, median of {ROUNDS} rounds of {EVENTS_PER_ROUND} events (baseline learned: {learned}) | {ns:.0} ns/event | <= {TARGET_NS:.0} ns |"
    );
    println!(
        "| Heap per agent after a learned week (estimate) | {per_agent} bytes | <= {MEMORY_BOUND_BYTES} bytes (bound with every table full) |"
    );
    println!(
        "| {agents} agents in one process | {:.1} MiB | <= {:.1} MiB |",
        bytes as f64 / 1048576.0,
        (AGENTS * MEMORY_BOUND_BYTES) as f64 / 1048576.0
    );
    println!("\nRounds (ns/event): {per_event:.0?}");
    if ns <= TARGET_NS && per_agent <= MEMORY_BOUND_BYTES && learned {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
