//! `agent-sidecar approvals ...`: the real binary against a real admin API.

use std::{os::unix::fs::PermissionsExt, process::Output, time::Duration};

use agent_sidecar::{
    admin::{self, Admin},
    approvals::{ActionSummary, ApprovalStore, BearerToken, NewApproval},
    policy::Tier,
};
use tokio::{net::TcpListener, process::Command};

const TOKEN: &str = "cli-test-token-0123456789abcdef";

fn refund() -> NewApproval {
    NewApproval {
        agent_id: "support-agent".into(),
        action: ActionSummary {
            tool: "billing".into(),
            action: "refund".into(),
            target: "billing.example".into(),
            input: serde_json::json!({"amount": 7200, "currency": "USD"}),
            request: serde_json::Value::Null,
        },
        tier: Tier::Approval,
        rule_ids: vec!["support.refund-over-5000".into()],
        policy_version: "sha256:abc".into(),
        reason: "refund above 5,000 USD".into(),
        sla: Duration::from_secs(600),
        binding: "sha256:00".into(),
        decided: None,
        chain: None,
    }
}

async fn cli(args: &[&str], url: &str, token_file: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .arg("approvals")
        .args(args)
        .env("AGENT_SIDECAR_ADMIN_URL", url)
        .env("AGENT_SIDECAR_ADMIN_TOKEN_FILE", token_file)
        .output()
        .await
        .expect("run agent-sidecar")
}

#[tokio::test]
async fn approvers_list_show_and_decide_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path().join("journal"))
        .await
        .expect("open");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(admin::serve(
        listener,
        Admin::api(store.clone(), BearerToken::new(TOKEN).expect("token")),
    ));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let first = store.request("k1", refund()).await.expect("request");
    let second = store.request("k2", refund()).await.expect("request");

    let out = cli(&["list"], &url, &token_file).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains(first.id().as_str()) && text.contains(second.id().as_str()),
        "{text}"
    );
    assert!(text.contains("billing.refund -> billing.example"), "{text}");

    let out = cli(&["show", first.id().as_str()], &url, &token_file).await;
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["reason"], "refund above 5,000 USD");

    let waiter = tokio::spawn(async move { first.wait().await });
    let id = shown["id"].as_str().expect("id").to_string();
    let out = cli(
        &[
            "approve",
            &id,
            "--approver",
            "alice",
            "--reason",
            "customer verified",
        ],
        &url,
        &token_file,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(waiter.await.expect("join").expect("outcome").is_approved());

    // Deciding twice is refused by the sidecar: exit 1 with its message.
    let out = cli(
        &["deny", &id, "--approver", "bob", "--reason", "late"],
        &url,
        &token_file,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());

    let out = cli(
        &[
            "deny",
            second.id().as_str(),
            "--approver",
            "bob",
            "--reason",
            "no ticket",
        ],
        &url,
        &token_file,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let out = cli(&["list"], &url, &token_file).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("no approvals"));

    // A wrong token is refused; a token file others can read is not used.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token-but-long-enough").expect("write");
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = cli(&["list"], &url, &wrong).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = cli(&["list"], &url, &token_file).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    server.abort();
}
