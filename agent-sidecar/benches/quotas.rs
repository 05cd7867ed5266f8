//! Quota benchmark (`harness = false`): what counting a call against the
//! quotas adds to it, per call, at p50 and p99.
//!
//! Three runs in one process, same calls: quotas off (no limit declared:
//! the gateway's check is `None`), local counters (three limits: calls,
//! amount with its counter file in a temporary directory, and an agent
//! limit the call does not fall under), and the same three limits in a
//! real Redis (Debian's `redis-server`, started here on a loopback port,
//! no persistence). One caller at a time, so each sample is one call's
//! latency. Target: local p99 added <= 50 us.
//!
//! `cargo bench -p agent-sidecar --bench quotas` (needs `redis-server`).

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use agent_sidecar::{
    policy::{Action, AgentIdentity, Attributes, DecidingRule, Decision, Money, Tier},
    quotas::{QuotaDecl, Quotas, SharedCounters},
};
use agent_sidecar_test_support::redis::Redis;

const CALLS: usize = 20_000;
const TARGET_US: f64 = 50.0;

fn limits() -> Vec<QuotaDecl> {
    serde_json::from_value(serde_json::json!([
        {"name": "refunds", "scope": "org", "window": "1d", "measure": "calls",
         "limit": u64::MAX / 4, "tools": ["payments"]},
        {"name": "refund-total", "scope": "team", "window": "1d", "measure": "amount",
         "limit": 1_000_000_000_000u64, "tools": ["payments"]},
        {"name": "lookups", "scope": "agent", "window": "1h", "measure": "calls",
         "limit": 1000, "tools": ["crm"]}
    ]))
    .expect("limits")
}

fn action() -> Action {
    Action {
        agent: AgentIdentity {
            id: "support-1".into(),
            environment: "prod".into(),
            team: Some("support".into()),
            ..Default::default()
        },
        tool: Some("payments".into()),
        action: Some("refund".into()),
        target: None,
        attributes: Attributes {
            amount: Some(Money {
                value: 12.5,
                currency: None,
            }),
            ..Default::default()
        },
    }
}

fn decision() -> Decision {
    Decision {
        tier: Tier::Autonomous,
        rules: vec![DecidingRule {
            id: "defaults.action".into(),
            level: "base acme".into(),
            source: "org.yaml:1:1".into(),
        }],
        policy_version: serde_json::from_value(
            serde_json::json!({"hash": "0123456789abcdef", "label": "bench"}),
        )
        .expect("version"),
        reason: "allowed".into(),
        quarantine: false,
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

async fn run(q: Option<&Quotas>) -> (f64, f64) {
    let a = action();
    let mut samples = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let d = decision();
        let t = Instant::now();
        let d = match q {
            Some(q) => q.apply(&a, d, 120).await,
            None => d,
        };
        samples.push(t.elapsed());
        assert_eq!(d.tier, Tier::Autonomous, "{d:?}");
    }
    samples.sort();
    (pct(&samples, 0.5), pct(&samples, 0.99))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let redis = Redis::start_free();
    let dir = tempfile::tempdir().expect("tempdir");
    let local = Quotas::new("acme", limits(), Some(dir.path()), None).expect("quotas");
    let memory_only: Vec<QuotaDecl> = limits()
        .into_iter()
        .filter(|l| l.name != "refund-total")
        .collect();
    let memory = Quotas::new("acme", memory_only, None, None).expect("quotas");
    let shared = SharedCounters::connect(&redis.url(), Duration::from_millis(250))
        .await
        .expect("redis");
    let remote = Quotas::new("acme", limits(), None, Some(shared)).expect("quotas");
    let off = run(None).await;
    let mem = run(Some(&memory)).await;
    let loc = run(Some(&local)).await;
    let red = run(Some(&remote)).await;
    drop(redis);
    println!("| run | p50 us | p99 us | p99 added us |");
    println!("|---|---|---|---|");
    for (name, (p50, p99)) in [
        ("quotas off", off),
        ("local, calls only (memory)", mem),
        (
            "local, calls + amount (counter journal appended per call)",
            loc,
        ),
        ("redis on loopback, calls + amount", red),
    ] {
        println!(
            "| {name} | {p50:.2} | {p99:.2} | {:.2} |",
            (p99 - off.1).max(0.0)
        );
    }
    let added = mem.1 - off.1;
    println!(
        "\n{CALLS} calls per run, one at a time. Target: local p99 added <= {TARGET_US} us: {}",
        if added <= TARGET_US { "met" } else { "NOT met" }
    );
    ExitCode::SUCCESS
}
