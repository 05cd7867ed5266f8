//! Quotas across sidecars sharing a real Redis (Debian's `redis-server`,
//! started by the test on a loopback port): the sum is enforced across
//! them, an unreachable Redis refuses money limits and lets `allow` limits
//! through counted as fail-opens, counting resumes when Redis is back; and
//! the ways a prompt-injected agent would get around a limit fail.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use agent_sidecar::{
    policy::{Action, AgentIdentity, Attributes, DecidingRule, Decision, Money, Tier},
    quotas::{QuotaDecl, Quotas, SharedCounters},
};
use agent_sidecar_test_support::redis::{Redis, free_port};

fn limits() -> Vec<QuotaDecl> {
    serde_json::from_value(serde_json::json!([
        {"name": "refunds-per-day", "scope": "org", "window": "1d", "measure": "calls",
         "limit": 10, "tools": ["payments"], "actions": ["refund"], "on_reach": "3",
         "on_unavailable": "deny"},
        {"name": "refund-total", "scope": "org", "window": "1d", "measure": "amount",
         "limit": 100_000, "tools": ["payments"], "actions": ["refund"], "on_reach": "4"},
        {"name": "lookups", "scope": "agent", "window": "1h", "measure": "calls",
         "limit": 1000, "tools": ["crm"], "on_unavailable": "allow"}
    ]))
    .unwrap()
}

fn action(agent: &str, tool: &str, act: &str, amount: Option<f64>) -> Action {
    Action {
        agent: AgentIdentity {
            id: agent.into(),
            environment: "prod".into(),
            team: Some("support".into()),
            ..Default::default()
        },
        tool: Some(tool.into()),
        action: Some(act.into()),
        target: None,
        attributes: Attributes {
            amount: amount.map(|value| Money {
                value,
                currency: None,
            }),
            ..Default::default()
        },
    }
}

fn tier1() -> Decision {
    Decision {
        tier: Tier::Autonomous,
        rules: vec![DecidingRule {
            id: "defaults.action".into(),
            level: "base acme".into(),
            source: "org.yaml:1:1".into(),
        }],
        policy_version: serde_json::from_value(
            serde_json::json!({"hash": "0123456789abcdef", "label": "test"}),
        )
        .unwrap(),
        reason: "allowed".into(),
        quarantine: false,
    }
}

async fn sidecar(redis: &Redis) -> Quotas {
    let shared = SharedCounters::connect(&redis.url(), Duration::from_millis(200))
        .await
        .unwrap();
    Quotas::new("acme", limits(), None, Some(shared)).unwrap()
}

async fn refund(q: &Quotas, agent: &str, amount: f64) -> Decision {
    q.apply(
        &action(agent, "payments", "refund", Some(amount)),
        tier1(),
        100,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sidecars_share_the_org_limit_and_redis_outages_follow_on_unavailable() {
    let port = free_port();
    let mut redis = Redis::start(port);
    let a = sidecar(&redis).await;
    let b = sidecar(&redis).await;

    // 6 refunds through A, 4 through B: all pass.
    for _ in 0..6 {
        assert_eq!(refund(&a, "agent-a", 10.0).await.tier, Tier::Autonomous);
    }
    for _ in 0..4 {
        assert_eq!(refund(&b, "agent-b", 10.0).await.tier, Tier::Autonomous);
    }
    // The 11th is refused on either sidecar, explained by the limit.
    for q in [&a, &b] {
        let d = refund(q, "agent-c", 10.0).await;
        assert_eq!(d.tier, Tier::Approval, "{d:?}");
        assert_eq!(&*d.rules[0].id, "quotas.refunds-per-day");
        assert!(d.reason.contains("10 of 10"), "{}", d.reason);
    }
    assert_eq!(a.stats().reached + b.stats().reached, 2);

    // Redis down: the deny limits refuse, the allow limit passes, counted.
    redis.kill();
    let d = refund(&a, "agent-a", 1.0).await;
    assert!(d.tier >= Tier::Approval, "{d:?}");
    assert!(d.reason.contains("cannot be checked"), "{}", d.reason);
    let d = a
        .apply(&action("agent-a", "crm", "lookup", None), tier1(), 10)
        .await;
    assert_eq!(d.tier, Tier::Autonomous);
    assert!(d.reason.contains("fail-open"), "{}", d.reason);
    assert_eq!(a.stats().fail_open, 1);
    assert!(a.stats().backend_errors >= 2);

    // Redis back (empty: a new day for its counters): counting resumes.
    let redis2 = Redis::start(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = refund(&b, "agent-b", 10.0).await;
        if d.tier == Tier::Autonomous {
            break;
        }
        assert!(Instant::now() < deadline, "counting did not resume: {d:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..9 {
        assert_eq!(refund(&a, "agent-a", 10.0).await.tier, Tier::Autonomous);
    }
    assert_eq!(refund(&b, "agent-b", 10.0).await.tier, Tier::Approval);
    drop(redis2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_calls_from_two_sidecars_never_overshoot() {
    let redis = Redis::start(free_port());
    let a = sidecar(&redis).await;
    let b = sidecar(&redis).await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let q = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            refund(&q, "agent-x", 1.0).await.tier == Tier::Autonomous
        }));
    }
    let mut passed = 0;
    for t in tasks {
        passed += usize::from(t.await.unwrap());
    }
    assert_eq!(passed, 10, "exactly the limit passes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_that_dodge_the_money_limit_are_refused() {
    let redis = Redis::start(free_port());
    let q = sidecar(&redis).await;
    // Negative, non-finite and huge amounts: refused, not counted.
    for bad in [-500.0, f64::NAN, f64::INFINITY, 1e300, -0.01] {
        let d = refund(&q, "agent-a", bad).await;
        assert_eq!(d.tier, Tier::Halt, "{bad}: {d:?}");
        assert_eq!(&*d.rules[0].id, "quotas.refund-total");
    }
    // No amount at all (a string the policy could not read, an amount
    // nested where the policy does not look): refused.
    let d = q
        .apply(&action("agent-a", "payments", "refund", None), tier1(), 10)
        .await;
    assert_eq!(d.tier, Tier::Halt, "{d:?}");
    // Another currency than the base one: refused.
    let mut act = action("agent-a", "payments", "refund", Some(1.0));
    act.attributes.amount.as_mut().unwrap().currency = Some("KWD".into());
    assert_eq!(q.apply(&act, tier1(), 10).await.tier, Tier::Halt);
    // Amounts count in cents: 1000.00 of 1000.00 fits; one more cent
    // does not.
    assert_eq!(refund(&q, "agent-a", 1000.0).await.tier, Tier::Autonomous);
    let d = refund(&q, "agent-a", 0.01).await;
    assert!(d.tier >= Tier::Approval, "{d:?}");
    // The refusals of the amount limit took back their call counts: 1
    // refund counted of 10.
    for _ in 0..9 {
        let d = refund(&q, "agent-a", 0.0).await;
        assert_eq!(d.tier, Tier::Autonomous, "{d:?}");
    }
    assert_eq!(refund(&q, "agent-a", 0.0).await.tier, Tier::Approval);
}

#[tokio::test]
async fn retries_with_changed_bytes_each_count_and_local_counters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let q = Quotas::new("acme", limits(), Some(dir.path()), None).unwrap();
    // The same refund retried with different bodies (bytes_out differs):
    // every attempt is a call.
    for i in 0..10u64 {
        assert_eq!(
            q.apply(
                &action("a", "payments", "refund", Some(100.0)),
                tier1(),
                100 + i
            )
            .await
            .tier,
            Tier::Autonomous
        );
    }
    assert_eq!(refund(&q, "a", 1.0).await.tier, Tier::Approval);
    drop(q);
    // A restart keeps the day's money total (1000.00 of 1000.00).
    let q = Arc::new(Quotas::new("acme", limits(), Some(dir.path()), None).unwrap());
    let lim: Vec<QuotaDecl> = limits()
        .into_iter()
        .filter(|l| l.name == "refund-total")
        .collect();
    let q2 = Quotas::new("acme", lim, Some(dir.path()), None).unwrap();
    assert_eq!(refund(&q2, "a", 0.01).await.tier, Tier::Halt);
    drop(q);
}

/// The `erp-gateway` policy fixture with `yaml` appended to its base.
fn erp_set_with(yaml: &str) -> agent_sidecar_test_support::temp::TempDir {
    let dir = agent_sidecar_test_support::temp::TempDir::new();
    agent_sidecar_test_support::fixtures::write_set(
        "erp-gateway",
        &dir.0,
        &[("HOST", "erp.test"), ("PORT", "443"), ("STREAM_PATH", "/s")],
    );
    let base = dir.0.join("base.yaml");
    let text = std::fs::read_to_string(&base).unwrap();
    std::fs::write(&base, format!("{text}\n{yaml}")).unwrap();
    dir
}

/// The `quotas:` key of a policy set, compiled, as `run` builds them.
async fn quotas_from_policy(redis: &Redis, yaml: &str) -> Quotas {
    let dir = erp_set_with(yaml);
    let set = agent_sidecar::policy::CompiledPolicySet::load_dir(&dir.0).expect("policy compiles");
    agent_sidecar::quotas::for_agent(&set, "buyer", &dir.0, Some(&redis.url()), None)
        .await
        .expect("quotas")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_enforce_the_policy_quota_summed_over_a_shared_redis() {
    use agent_sidecar_test_support::sidecar::gateway::{Harness, Options};
    let redis = Redis::start(free_port());
    let yaml = "quotas:\n  - { name: payments-per-day, scope: org, window: 1d, measure: calls, limit: 10, tools: [erp], actions: [pay], on_reach: deny }\n  - { name: paid-per-day, scope: org, window: 1d, measure: amount, limit: 100000, tools: [erp], actions: [pay], on_reach: deny }\n";
    let a = Harness::start(Options {
        quotas: Some(quotas_from_policy(&redis, yaml).await),
        ..Options::default()
    })
    .await;
    let b = Harness::start(Options {
        quotas: Some(quotas_from_policy(&redis, yaml).await),
        ..Options::default()
    })
    .await;
    // An amount as a string counts like the number (the policy reads it).
    for _ in 0..6 {
        let (status, body) = pay(&a, r#""10""#).await;
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..4 {
        let (status, body) = pay(&b, "10").await;
        assert_eq!(status, 200, "{body}");
    }
    for h in [&a, &b] {
        let (status, body) = pay(h, "10").await;
        assert_eq!(status, 403, "the 11th payment is refused: {body}");
        assert!(body.contains("payments-per-day"), "{body}");
    }
    assert_eq!(a.api.requests().len() + b.api.requests().len(), 10);
}

/// `POST /v1/payments` with `{"amount": AMOUNT}` through `h`'s proxy.
async fn pay(
    h: &agent_sidecar_test_support::sidecar::gateway::Harness,
    amount: &str,
) -> (u16, String) {
    h.post_json("/v1/payments", &format!(r#"{{"amount": {amount}}}"#))
        .await
}

/// A policy reload puts its quotas in force on the running gateway, the
/// counters kept; a reload with an invalid limit is refused whole and the
/// limits in force stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_changes_the_limits_in_force_and_keeps_the_counters() {
    use agent_sidecar::policy::ReloadOutcome;
    use agent_sidecar_test_support::sidecar::gateway::{Harness, Options};
    let state = tempfile::tempdir().expect("tempdir");
    let h = Harness::start(Options {
        quotas: Some(Quotas::new("test", Vec::new(), Some(state.path()), None).expect("quotas")),
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(pay(&h, "10").await.0, 200, "no limit declared yet");
    }
    let base = h.policy_dir.join("base.yaml");
    let original = std::fs::read_to_string(&base).expect("base");
    let with = |limit: u32, on_reach: &str| {
        format!(
            "{original}quotas:\n  - {{ name: payments-per-day, scope: agent, window: 1d, measure: calls, limit: {limit}, tools: [erp], actions: [pay], on_reach: {on_reach} }}\n"
        )
    };
    std::fs::write(&base, with(2, "deny")).expect("write");
    assert!(matches!(h.policy.reload(), ReloadOutcome::Updated(_)));
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let mut passed = 0;
    loop {
        let (status, body) = pay(&h, "10").await;
        if status == 403 {
            assert!(body.contains("payments-per-day"), "{body}");
            break;
        }
        passed += 1;
        assert!(
            std::time::Instant::now() < until,
            "the reloaded limit never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(passed <= 2, "the limit of 2 let {passed} through");
    // A limit that would lower the tier is refused at reload: the limit of
    // 2 stays, and so does its count.
    std::fs::write(&base, with(100, "2")).expect("write");
    match h.policy.reload() {
        ReloadOutcome::Failed(e) => assert!(e.to_string().contains("on_reach"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(pay(&h, "10").await.0, 403, "the limit in force stays");
    // Raised to 100: the same day's counter goes on (2 used), calls pass.
    std::fs::write(&base, with(100, "deny")).expect("write");
    assert!(matches!(h.policy.reload(), ReloadOutcome::Updated(_)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pay(&h, "10").await.0, 200, "raised limit in force");
}

/// `policy explain` names the quotas a call would be counted against and
/// the approval chain that would decide it if held; a call of another
/// action names neither.
#[test]
fn policy_explain_names_the_quotas_and_the_approval_chain_of_an_action() {
    let dir = erp_set_with(
        "quotas:\n  - { name: paid-per-day, scope: org, window: 1d, measure: amount, limit: 500000, tools: [erp], actions: [pay], on_reach: 4 }\napproval_chains:\n  - name: big-payments\n    tools: [erp]\n    actions: [pay]\n    steps:\n      - {role: team_lead, agent_team: true, up_to: 10000}\n      - {role: finance, team: finance}\n    four_eyes: true\n",
    );
    let explain = |action: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
            .args(["policy", "explain"])
            .arg(&dir.0)
            .args(["--action", action])
            .output()
            .expect("agent-sidecar runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let pay = explain(
        r#"{"agent": "buyer", "environment": "prod", "tool": "erp", "action": "pay", "attributes": {"amount": 5000}}"#,
    );
    assert!(pay.contains("quota:   paid-per-day (org scope"), "{pay}");
    assert!(pay.contains("when reached: tier 4"), "{pay}");
    assert!(
        pay.contains("approval chain (if held): big-payments: team_lead of the agent's team up to 10000, then finance of finance; two distinct approvers"),
        "{pay}"
    );
    let list = explain(
        r#"{"agent": "buyer", "environment": "prod", "tool": "erp", "action": "list_invoices"}"#,
    );
    assert!(
        !list.contains("quota:") && !list.contains("approval chain"),
        "{list}"
    );
}
