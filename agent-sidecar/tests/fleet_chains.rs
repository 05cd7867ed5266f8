//! The approver directory end to end: a real store on disk, the admin API
//! on a real socket with `--approvers-file` loaded from a mode-0600 file,
//! decisions given with the real `curl`. Only an approver's own token
//! decides, under that approver's name; the admin token, a forged token and
//! a claimed name are refused, and the held call stays held meanwhile.

use std::{net::SocketAddr, os::unix::fs::PermissionsExt, time::Duration};

use agent_sidecar::{
    admin::{self, Admin},
    approvals::{
        ActionSummary, ApprovalError, ApprovalOutcome, ApprovalStore, ApprovalStoreOptions,
        Approver, Approvers, BearerToken, NewApproval, Notifier, PendingApproval, UnixMillis,
        chain::{ChainRequest, ChainSpec, ChainStep, resolve_first},
        directory::token_sha256_hex,
    },
    policy::Tier,
};
use tokio::{net::TcpListener, process::Command};

const ADMIN: &str = "test-admin-token-5f2c9a1e";
const LEAD: &str = "lead-token-3b7d1f0e9a2c4d6e";
const FINANCE: &str = "finance-token-8c1a5e2f7b3d9a0c";

fn refund(amount: u64) -> NewApproval {
    NewApproval {
        agent_id: "agent-support-1".into(),
        action: ActionSummary {
            tool: "payments".into(),
            action: "refund".into(),
            target: "api.psp.example".into(),
            input: serde_json::json!({"amount": amount}),
            request: serde_json::Value::Null,
        },
        tier: Tier::Approval,
        rule_ids: vec!["payments.refunds".into()],
        policy_version: "sha256:0f1e2d".into(),
        reason: "refund".into(),
        sla: Duration::from_secs(60),
        binding: "sha256:00".into(),
        decided: None,
        chain: None,
    }
}

async fn curl_decide(addr: SocketAddr, token: &str, id: &str, body: &str) -> (u16, String) {
    let path = format!("/v1/approvals/{id}/approve");
    post_json(addr, token.into(), path, body.into()).await
}

#[tokio::test]
async fn only_an_approvers_own_token_decides_under_their_own_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("approvers.yaml");
    std::fs::write(
        &file,
        format!(
            "approvers:\n  - name: lee\n    team: support\n    roles: [team_lead]\n    token_sha256: {}\n  - name: fay\n    team: finance\n    roles: [finance]\n    token_sha256: {}\n",
            token_sha256_hex(LEAD),
            token_sha256_hex(FINANCE)
        ),
    )
    .expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(
        Approvers::from_file(&file).is_err(),
        "a world-readable directory is refused"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let approvers = Approvers::from_file(&file).expect("directory");

    let (store, _) = ApprovalStore::open(&dir.path().join("approvals"))
        .await
        .expect("open");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let admin = Admin::api(store.clone(), BearerToken::new(ADMIN).expect("token"))
        .with_approvers(approvers);
    let server = tokio::spawn(admin::serve(listener, admin));

    let held = store
        .request("k-refund", refund(500))
        .await
        .expect("request");
    let id = held.id().to_string();
    let waiter = tokio::spawn({
        let h = held.clone();
        async move { h.wait().await }
    });
    let body = r#"{"approver": "lee", "reason": "refund verified"}"#;

    // The shared admin token can no longer decide, under any name.
    let (s, b) = curl_decide(addr, ADMIN, &id, body).await;
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("approver_token_required"), "{b}");
    // A forged token (one byte off) is neither an approver's nor the admin's.
    let forged = format!("{}X", &LEAD[..LEAD.len() - 1]);
    let (s, b) = curl_decide(addr, &forged, &id, body).await;
    assert_eq!(s, 401, "{b}");
    // The digest from the file is not a token either.
    let (s, _) = curl_decide(addr, &token_sha256_hex(LEAD), &id, body).await;
    assert_eq!(s, 401);
    // Finance's token cannot record a decision under lee's name.
    let (s, b) = curl_decide(addr, FINANCE, &id, body).await;
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("approver_mismatch"), "{b}");
    // After every refusal the call is still held.
    assert!(!waiter.is_finished(), "refusals must not release the call");

    // Lee's own token decides, recorded as lee.
    let (s, b) = curl_decide(addr, LEAD, &id, body).await;
    assert_eq!(s, 200, "{b}");
    let outcome = waiter.await.expect("join").expect("waited");
    assert!(
        matches!(&outcome, ApprovalOutcome::Approved(d) if d.by == "lee"),
        "{outcome:?}"
    );
    server.abort();
}

/// What the store told its notifier about chain steps.
#[derive(Default)]
struct ChainLog(std::sync::Mutex<Vec<String>>);

impl Notifier for ChainLog {
    fn pending(&self, _: &PendingApproval) {}
    fn decided(&self, a: &PendingApproval) {
        self.0
            .lock()
            .unwrap()
            .push(format!("decided {}", a.state.name()));
    }
    fn chain_step(&self, _: &PendingApproval, step: &ChainStep<'_>) {
        let line = match step {
            ChainStep::PartiallyApproved {
                approver,
                have,
                need,
            } => {
                format!("partial {approver} {have}/{need}")
            }
            ChainStep::Escalated { to_step, role, .. } => format!("escalated {to_step} {role}"),
            ChainStep::Refused {
                approver, reason, ..
            } => format!("refused {approver} {reason}"),
        };
        self.0.lock().unwrap().push(line);
    }
}

fn chains() -> Vec<ChainSpec> {
    let yaml = r#"
- name: refunds
  tools: [payments]
  actions: [refund]
  steps:
    - {role: team_lead, agent_team: true, up_to: 1000}
    - {role: finance, team: finance}
  escalate_after_secs: 1
  exclude_owner: true
- name: bulk-refunds
  tools: [payments]
  actions: [bulk_refund]
  steps:
    - {role: finance, team: finance}
  four_eyes: true
"#;
    let chains: Vec<ChainSpec> = agent_sidecar::yaml::from_str(yaml).expect("chains");
    for c in &chains {
        c.validate().expect("valid chain");
    }
    chains
}

fn governed(action: &str, amount: f64) -> NewApproval {
    let mut req = refund(amount as u64);
    req.action.action = action.into();
    let ask = ChainRequest {
        tool: "payments",
        action,
        amount: Some(amount),
        agent_team: Some("support"),
        owner: Some("olu"),
    };
    req.chain = resolve_first(&chains(), &ask, UnixMillis::now().0);
    assert!(req.chain.is_some(), "a chain governs {action}");
    req
}

async fn curl_post(
    addr: SocketAddr,
    token: &str,
    id: &str,
    verb: &str,
    who: &str,
) -> (u16, String) {
    let body = format!(r#"{{"approver": "{who}", "reason": "checked"}}"#);
    post_json(
        addr,
        token.into(),
        format!("/v1/approvals/{id}/{verb}"),
        body,
    )
    .await
}

/// `curl -X POST` of a JSON `body` to the admin API at `path`: status and body.
async fn post_json(addr: SocketAddr, token: String, path: String, body: String) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json", "--data", &body])
        .arg(format!("http://{addr}{path}"))
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

const OWNER: &str = "owner-token-0d9e8f7a6b5c4d3e";
const FINANCE2: &str = "finance2-token-1a2b3c4d5e6f7a8b";

#[tokio::test]
async fn approval_chains_route_by_amount_escalate_and_need_four_distinct_eyes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("approvers.yaml");
    let entry = |name: &str, team: &str, role: &str, token: &str| {
        format!(
            "  - name: {name}\n    team: {team}\n    roles: [{role}]\n    token_sha256: {}\n",
            token_sha256_hex(token)
        )
    };
    let text = format!(
        "approvers:\n{}{}{}{}",
        entry("lee", "support", "team_lead", LEAD),
        entry("olu", "support", "team_lead", OWNER),
        entry("fay", "finance", "finance", FINANCE),
        entry("gus", "finance", "finance", FINANCE2),
    );
    std::fs::write(&file, text).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let log = std::sync::Arc::new(ChainLog::default());
    let (store, _) = ApprovalStore::open_with(
        dir.path().join("approvals"),
        ApprovalStoreOptions {
            notifier: Some(log.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("open");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let admin = Admin::api(store.clone(), BearerToken::new(ADMIN).expect("token"))
        .with_approvers(Approvers::from_file(&file).expect("directory"));
    let server = tokio::spawn(admin::serve(listener, admin));

    // 500: the agent's team lead may approve; the owner may not (though a
    // team lead), finance not before the SLA passes.
    let small = store
        .request("k-500", governed("refund", 500.0))
        .await
        .expect("hold");
    let id = small.id().to_string();
    let (s, b) = curl_post(addr, OWNER, &id, "approve", "olu").await;
    assert_eq!((s, b.contains("owner_excluded")), (403, true), "{b}");
    let (s, b) = curl_post(addr, FINANCE, &id, "approve", "fay").await;
    assert_eq!((s, b.contains("not_yet_eligible")), (403, true), "{b}");
    let (s, b) = curl_post(addr, ADMIN, &id, "approve", "lee").await;
    assert_eq!(
        (s, b.contains("approver_token_required")),
        (403, true),
        "{b}"
    );
    let (s, b) = curl_post(addr, LEAD, &id, "approve", "lee").await;
    assert_eq!(s, 200, "{b}");
    assert!(small.wait().await.expect("wait").is_approved());

    // 5,000: above the team lead's ceiling; finance decides at once.
    let big = store
        .request("k-5000", governed("refund", 5000.0))
        .await
        .expect("hold");
    let id = big.id().to_string();
    let (s, b) = curl_post(addr, LEAD, &id, "approve", "lee").await;
    assert_eq!((s, b.contains("above_ceiling")), (403, true), "{b}");
    let (s, b) = curl_post(addr, LEAD, &id, "deny", "lee").await;
    assert_eq!(
        (s, b.contains("above_ceiling")),
        (403, true),
        "a deny is checked too: {b}"
    );
    let (s, b) = curl_post(addr, FINANCE, &id, "approve", "fay").await;
    assert_eq!(s, 200, "{b}");
    assert!(big.wait().await.expect("wait").is_approved());

    // 800 left alone past the 1 s SLA: finance becomes eligible, told once.
    let slow = store
        .request("k-800", governed("refund", 800.0))
        .await
        .expect("hold");
    let id = slow.id().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let record = store.get(slow.id()).await.expect("get");
    assert_eq!(record.chain.as_ref().expect("chain").escalated_to, 1);
    let (s, b) = curl_post(addr, FINANCE, &id, "approve", "fay").await;
    assert_eq!(s, 200, "{b}");

    // Four-eyes: one approval keeps the call held; the same approver again
    // is refused; a second, distinct finance approver releases it.
    let bulk = store
        .request("k-bulk", governed("bulk_refund", 200.0))
        .await
        .expect("hold");
    let id = bulk.id().to_string();
    let waiter = tokio::spawn({
        let h = bulk.clone();
        async move { h.wait().await }
    });
    let (s, b) = curl_post(addr, FINANCE, &id, "approve", "fay").await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b.contains(r#""kind":"pending""#) || b.contains(r#""kind": "pending""#),
        "{b}"
    );
    let (s, b) = curl_post(addr, FINANCE, &id, "approve", "fay").await;
    assert_eq!((s, b.contains("already_approved")), (403, true), "{b}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiter.is_finished(),
        "one approval of two must not release the call"
    );
    let (s, b) = curl_post(addr, FINANCE2, &id, "approve", "gus").await;
    assert_eq!(s, 200, "{b}");
    let outcome = waiter.await.expect("join").expect("wait");
    assert!(
        matches!(&outcome, ApprovalOutcome::Approved(d) if d.by == "fay, gus"),
        "{outcome:?}"
    );

    // Every step reached the notifier (audit trail, approvers' webhook).
    let log = log.0.lock().unwrap().clone();
    let expected = [
        "refused olu owner_excluded",
        "refused fay not_yet_eligible",
        "decided approved",
        "refused lee above_ceiling",
        "refused lee above_ceiling",
        "decided approved",
        "escalated 1 finance",
        "decided approved",
        "partial fay 1/2",
        "refused fay already_approved",
        "decided approved",
    ];
    assert_eq!(log, expected);
    server.abort();
}

/// The gateway resolves the chain of the policy in force when it holds a
/// call: by the amount the agent sent (a header here), so a large wire
/// goes to finance; the admin-token path cannot decide it; a bad chain
/// is refused at reload, naming the misspelt tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_holds_a_call_under_the_chain_its_amount_selects() {
    use agent_sidecar::policy::ReloadOutcome;
    use agent_sidecar_test_support::{
        curl::curl,
        sidecar::gateway::{Harness, Options},
    };
    let h = Harness::start(Options::default()).await;
    let base = h.policy_dir.join("base.yaml");
    let original = std::fs::read_to_string(&base).expect("base");
    let chain = |tool: &str| {
        format!(
            "{original}approval_chains:\n  - name: wires\n    tools: [{tool}]\n    actions: [wire]\n    steps:\n      - {{role: team_lead, team: buying, up_to: 5000}}\n      - {{role: finance, team: finance}}\n"
        )
    };
    std::fs::write(&base, chain("erpp")).expect("write");
    match h.policy.reload() {
        ReloadOutcome::Failed(e) => assert!(e.to_string().contains("`erpp`"), "{e}"),
        other => panic!("a chain naming an undeclared tool must be refused: {other:?}"),
    }
    std::fs::write(&base, chain("erp")).expect("write");
    assert!(
        matches!(h.policy.reload(), ReloadOutcome::Updated(_)),
        "the chain compiles"
    );

    let wire = |key: &str, amount: &str| {
        let mut args = h.explicit_args();
        args.extend(
            [
                "-X",
                "POST",
                "-H",
                &format!("Idempotency-Key: {key}"),
                "-H",
                &format!("x-amount: {amount}"),
                "--data-binary",
                "note=x",
                "--max-time",
                "20",
            ]
            .map(String::from),
        );
        args.push(h.url("/v1/wires"));
        args
    };
    let agent = tokio::spawn({
        let args = wire("w-20000", "20000");
        async move { curl(&args, &[]).await }
    });
    let held = loop {
        let list = h.approvals.list(Some("pending")).await.expect("list");
        if let Some(a) = list.into_iter().next() {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let chain = held
        .chain
        .as_ref()
        .expect("the held wire carries its chain");
    assert_eq!(chain.name, "wires");
    assert_eq!(
        chain.first_eligible, 1,
        "20,000 is above the team lead's 5,000"
    );
    let lead = Approver {
        name: "lee".into(),
        team: "buying".into(),
        roles: ["team_lead".to_string()].into(),
    };
    let finance = Approver {
        name: "fay".into(),
        team: "finance".into(),
        roles: ["finance".to_string()].into(),
    };
    let named = h.approvals.approve(&held.id, "fay", "ok").await;
    assert!(
        matches!(named, Err(ApprovalError::ChainNeedsApprover { .. })),
        "{named:?}"
    );
    let lee = h.approvals.approve_as(&held.id, &lead, "ok").await;
    assert!(matches!(lee, Err(ApprovalError::Chain { .. })), "{lee:?}");
    h.approvals
        .approve_as(&held.id, &finance, "checked")
        .await
        .expect("finance approves");
    let (status, body) = agent.await.expect("join");
    assert_eq!(status, 200, "{body}");
    assert_eq!(h.api.requests().len(), 1, "forwarded once, after finance");
}

/// A stand-in for the kernel quarantine (the real one is exercised by the
/// kill switch test of the `tests` crate): stopped or not.
#[derive(Default)]
struct Stopped(std::sync::atomic::AtomicBool);

impl agent_sidecar::fleet::Stopper for Stopped {
    fn stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn stop(&self, _: &str) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    fn resume(&self, _: &str, _: &str) -> Result<(), String> {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// With an approver directory, releasing a kill switch is a decision like
/// an approval: the admin token that tripped it cannot release it, nor can
/// a claimed name; the approver's own token does, recorded as them.
#[tokio::test]
async fn a_kill_switch_is_released_only_with_an_approvers_own_token() {
    use agent_sidecar::{
        events::EventBus,
        fleet::{FleetIdentity, KillSwitches, Stopper},
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("approvers.yaml");
    std::fs::write(
        &file,
        format!(
            "approvers:\n  - name: lee\n    team: support\n    roles: [team_lead]\n    token_sha256: {}\n",
            token_sha256_hex(LEAD)
        ),
    )
    .expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let stopper = std::sync::Arc::new(Stopped::default());
    let ks = KillSwitches::open(
        FleetIdentity {
            agent_id: "refund-bot".into(),
            instance_id: "refund-bot".into(),
            team: Some("support".into()),
            roles: Vec::new(),
            environment: "prod".into(),
        },
        None,
        Some(dir.path()),
        stopper.clone(),
        std::sync::Arc::new(EventBus::default()),
    )
    .expect("kill switches");
    let (store, _) = ApprovalStore::open(&dir.path().join("approvals"))
        .await
        .expect("open");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let admin = Admin::api(store, BearerToken::new(ADMIN).expect("token"))
        .with_kill_switches(ks.clone())
        .with_approvers(Approvers::from_file(&file).expect("directory"));
    let server = tokio::spawn(admin::serve(listener, admin));
    let post = |token: &str, path: &str, body: &str| {
        post_json(addr, token.to_string(), path.to_string(), body.to_string())
    };
    // An approver's token cannot trip (that is an operator's act).
    let trip =
        r#"{"id": "ks-1", "scope": {"team": "support"}, "reason": "incident 7", "by": "ops"}"#;
    let (s, _) = post(LEAD, "/v1/kill-switches", trip).await;
    assert_eq!(s, 401);
    let (s, b) = post(ADMIN, "/v1/kill-switches", trip).await;
    assert_eq!(s, 201, "{b}");
    assert!(stopper.stopped());
    let release = r#"{"approver": "lee", "reason": "incident closed"}"#;
    let (s, b) = post(ADMIN, "/v1/kill-switches/ks-1/release", release).await;
    assert_eq!(
        (s, b.contains("approver_token_required")),
        (403, true),
        "{b}"
    );
    let forged = format!("{}X", &LEAD[..LEAD.len() - 1]);
    let (s, _) = post(&forged, "/v1/kill-switches/ks-1/release", release).await;
    assert_eq!(s, 401);
    let (s, b) = post(
        LEAD,
        "/v1/kill-switches/ks-1/release",
        r#"{"approver": "someone-else", "reason": "x"}"#,
    )
    .await;
    assert_eq!((s, b.contains("approver_mismatch")), (403, true), "{b}");
    assert!(
        stopper.stopped(),
        "every refused release leaves the agent stopped"
    );
    let (s, b) = post(LEAD, "/v1/kill-switches/ks-1/release", release).await;
    assert_eq!(s, 200, "{b}");
    assert!(b.contains(r#""by":"lee""#), "{b}");
    assert!(!stopper.stopped());
    server.abort();
}
