//! The approver directory end to end: a real store on disk, the admin API
//! on a real socket with `--approvers-file` loaded from a mode-0600 file,
//! decisions given with the real `curl`. Only an approver's own token
//! decides, under that approver's name; the admin token, a forged token and
//! a claimed name are refused, and the held call stays held meanwhile.

use std::{net::SocketAddr, os::unix::fs::PermissionsExt, time::Duration};

use agent_sidecar::{
    admin::{self, Admin},
    approvals::{
        ActionSummary, ApprovalOutcome, ApprovalStore, Approvers, BearerToken, NewApproval,
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
    }
}

async fn curl_decide(addr: SocketAddr, token: &str, id: &str, body: &str) -> (u16, String) {
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
        .args(["-H", "Content-Type: application/json", "--data", body])
        .arg(format!("http://{addr}/v1/approvals/{id}/approve"))
        .output()
        .await
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
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
