//! Tier-3 held calls through the tool gateway, with curl as the agent and a
//! real HTTPS tool API: an approval binds the exact bytes that were decided
//! and will be forwarded; a quarantine or a policy change cancels held calls
//! (approvers told, `approve` refused); pending approvals are capped per
//! agent; tool names the policy cannot match exactly are refused.

use std::time::Duration;

use agent_sidecar::{approvals::ApprovalId, policy::ReloadOutcome};
use agent_sidecar_test_support::{
    curl::{curl, json_of},
    sidecar::gateway::{Harness, Options},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const ADMIN_TOKEN: &str = "an-admin-token-of-some-length";

/// Waits until `n` approvals are pending; returns them, oldest first.
async fn pending(h: &Harness, n: usize) -> Vec<agent_sidecar::approvals::PendingApproval> {
    for _ in 0..200 {
        let list = h.approvals.list(Some("pending")).await.unwrap();
        if list.len() >= n {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "fewer than {n} pending approvals: {:?}",
        h.approvals.list(None).await.unwrap()
    );
}

/// curl arguments for `POST /v1/wires?ref=inv-1` with `x-amount: amount`
/// and a form body, under idempotency key `key`.
fn wire(h: &Harness, key: &str, amount: &str) -> Vec<String> {
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
            "note=first",
        ]
        .map(String::from),
    );
    args.push(h.url("/v1/wires?ref=inv-1"));
    args
}

/// An MCP `tools/call` of `name` POSTed to `/mcp` with `headers`.
fn mcp_call(h: &Harness, id: u64, name: &str, arguments: Value, headers: &[&str]) -> Vec<String> {
    let mut args = h.explicit_args();
    args.extend(
        [
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-H",
            "accept: application/json, text/event-stream",
        ]
        .map(String::from),
    );
    for header in headers {
        args.extend(["-H".to_string(), header.to_string()]);
    }
    let message = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}});
    args.extend(["-d".to_string(), message.to_string(), h.url("/mcp")]);
    args
}

/// Runs curl in the background (the agent waiting on its held call).
fn background(args: Vec<String>, max_time: &'static str) -> JoinHandle<(u16, String)> {
    tokio::spawn(async move { curl(&args, &["--max-time", max_time]).await })
}

/// POSTs a decision to the admin API; returns (status, body).
async fn admin_decide(admin: &str, id: &ApprovalId, verb: &str) -> (u16, String) {
    curl(
        &[],
        &[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {ADMIN_TOKEN}"),
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"approver": "cfo@example.test", "reason": "looks fine"}"#,
            &format!("{admin}/v1/approvals/{id}/{verb}"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_approval_binds_every_decided_and_forwarded_byte() {
    let h = Harness::start(Options::default()).await;
    // The agent asks for 150, then hangs up.
    let first = background(wire(&h, "wire-1", "150"), "2");
    let approval = pending(&h, 1).await.remove(0);
    let shown = &approval.action.request;
    assert_eq!(shown["method"], "POST", "{shown}");
    assert_eq!(shown["query"], "ref=inv-1", "the raw query: {shown}");
    assert_eq!(shown["headers"]["x-amount"], json!(["150"]), "{shown}");
    assert_eq!(
        shown["body"]["text"], "note=first",
        "a non-JSON body: {shown}"
    );
    assert_eq!(shown["attributes"]["amount"]["value"], 150.0, "{shown}");
    assert!(approval.binding.starts_with("hmac-sha256:"), "{approval:?}");
    let _ = first.await;
    h.approvals
        .approve(&approval.id, "cfo@example.test", "150 is fine")
        .await
        .unwrap();
    // Retries under the same key that differ in any decided or forwarded
    // byte, over HTTP/2 and HTTP/1.1: refused, nothing reaches the tool.
    let mut changed: Vec<Vec<String>> = vec![
        wire(&h, "wire-1", "1000000"),
        [vec!["--http1.1".to_string()], wire(&h, "wire-1", "1000000")].concat(),
        [
            wire(&h, "wire-1", "150"),
            vec!["-H".into(), "x-amount: 1000000".into()],
        ]
        .concat(),
        [
            wire(&h, "wire-1", "150"),
            vec!["-H".into(), "x-beneficiary: DE99".into()],
        ]
        .concat(),
    ];
    let mut other_query = wire(&h, "wire-1", "150");
    *other_query.last_mut().unwrap() = h.url("/v1/wires?ref=inv-1&to=DE99");
    changed.push(other_query);
    let mut other_body = wire(&h, "wire-1", "150");
    let at = other_body.iter().position(|a| a == "note=first").unwrap();
    other_body[at] = "note=first&to=DE99".into();
    changed.push(other_body);
    for args in changed {
        let (status, body) = curl(&args, &[]).await;
        assert_eq!(status, 409, "{args:?}: {body}");
        assert_eq!(
            json_of(&body)["error"]["reason"],
            "idempotency_key_reused",
            "{body}"
        );
    }
    assert!(h.api.requests().is_empty(), "{:?}", h.api.requests());
    // The same bytes again: forwarded once, exactly as approved.
    let (status, body) = curl(&wire(&h, "wire-1", "150"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let seen = h.api.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-amount"], "150");
    assert_eq!(seen[0].path, "/v1/wires?ref=inv-1");
    assert_eq!(seen[0].body, "note=first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_approval_binds_the_arguments_of_its_json_rpc_id() {
    let h = Harness::start(Options::default()).await;
    for (n, key_header) in [
        (1, "Idempotency-Key: refund-9"),
        (2, "Mcp-Session-Id: session-4"),
    ] {
        // The agent hangs up while its call is held; 5 s leaves a loaded
        // machine the time to hold it first.
        let first = background(
            mcp_call(&h, 7, "refund", json!({"amount": 150}), &[key_header]),
            "5",
        );
        let approval = pending(&h, 1).await.remove(0);
        assert_eq!(approval.action.request["arguments"], json!({"amount": 150}));
        let _ = first.await;
        h.approvals
            .approve(&approval.id, "cfo@example.test", "150 is fine")
            .await
            .unwrap();
        let (status, body) = curl(
            &mcp_call(&h, 7, "refund", json!({"amount": 1000000}), &[key_header]),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let answer = json_of(&body);
        assert_eq!(answer["id"], 7, "{answer}");
        assert_eq!(
            answer["error"]["data"]["reason"], "idempotency_key_reused",
            "{answer}"
        );
        assert_eq!(h.api.requests().len(), n - 1, "nothing forwarded");
        let (status, body) = curl(
            &mcp_call(&h, 7, "refund", json!({"amount": 150}), &[key_header]),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let seen = h.api.requests();
        assert_eq!(seen.len(), n, "forwarded once: {seen:?}");
        assert_eq!(
            json_of(&seen[n - 1].body)["params"]["arguments"],
            json!({"amount": 150})
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_cancels_every_held_call_and_approvals_after_it_are_refused() {
    let h = Harness::start(Options::default()).await;
    let admin = h.admin(ADMIN_TOKEN).await;
    let rest = background(wire(&h, "held-1", "500"), "20");
    let mcp = background(
        mcp_call(
            &h,
            3,
            "refund",
            json!({"amount": 900}),
            &["Idempotency-Key: held-2"],
        ),
        "20",
    );
    let held = pending(&h, 2).await;
    // A tier-4 call with `quarantine: true`.
    let (status, body) = curl(&h.explicit_args(), &["-X", "DELETE", &h.url("/v1/vendors")]).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = rest.await.unwrap();
    assert_eq!(status, 403, "{body}");
    let err = &json_of(&body)["error"];
    assert_eq!(err["reason"], "approval_cancelled", "{body}");
    assert!(
        err["message"].as_str().unwrap().contains("quarantined"),
        "{body}"
    );
    let (_, body) = mcp.await.unwrap();
    assert_eq!(
        json_of(&body)["error"]["data"]["reason"],
        "approval_cancelled",
        "{body}"
    );
    for approval in &held {
        let record = h.approvals.get(&approval.id).await.unwrap();
        assert_eq!(record.state.name(), "cancelled", "{record:?}");
        let id = approval.id.to_string();
        h.approver
            .wait_matching("approval.decided", |e| {
                e["approval"]["id"] == id.as_str() && e["approval"]["state"]["kind"] == "cancelled"
            })
            .await;
        // An approver who has not heard of the quarantine.
        let (status, body) = admin_decide(&admin, &approval.id, "approve").await;
        assert_eq!(status, 409, "{body}");
    }
    assert!(h.api.requests().is_empty(), "{:?}", h.api.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_cancels_held_calls_the_new_policy_refuses() {
    let h = Harness::start(Options::default()).await;
    let admin = h.admin(ADMIN_TOKEN).await;
    // One call waits on its connection; another was approved after its
    // agent hung up and waits for the retry.
    let waiting = background(
        {
            let mut args = h.explicit_args();
            args.extend(
                [
                    "-X",
                    "POST",
                    "-H",
                    "content-type: application/json",
                    "-H",
                    "Idempotency-Key: pay-1",
                    "-d",
                    r#"{"amount": 5000}"#,
                ]
                .map(String::from),
            );
            args.push(h.url("/v1/payments"));
            args
        },
        "20",
    );
    let pay = pending(&h, 1).await.remove(0);
    let hung_up = background(wire(&h, "wire-7", "700"), "2");
    let wire_approval = pending(&h, 2).await.remove(1);
    let _ = hung_up.await;
    // Give the gateway time to see the hang-up, so that the approval below
    // waits for a retry instead of racing the first connection's handler.
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.approvals
        .approve(&wire_approval.id, "cfo@example.test", "ok")
        .await
        .unwrap();
    // Version 2 freezes payments and wires.
    let base = h.policy_dir.join("base.yaml");
    let text = std::fs::read_to_string(&base).unwrap();
    let frozen = text.replace(
        "rules:\n",
        "rules:\n  - id: payments-frozen\n    when: { tool: erp, action: pay }\n    tier: deny\n  - id: wires-frozen\n    when: { tool: erp, action: wire }\n    tier: 4\n",
    );
    std::fs::write(&base, frozen).unwrap();
    assert!(matches!(h.policy.reload(), ReloadOutcome::Updated(_)));
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 403, "{body}");
    let err = &json_of(&body)["error"];
    assert_eq!(err["reason"], "approval_cancelled", "{body}");
    assert!(
        err["message"].as_str().unwrap().contains("payments-frozen"),
        "{body}"
    );
    for approval in [&pay, &wire_approval] {
        let id = approval.id.to_string();
        h.approver
            .wait_matching("approval.decided", |e| {
                e["approval"]["id"] == id.as_str() && e["approval"]["state"]["kind"] == "cancelled"
            })
            .await;
    }
    let (status, body) = admin_decide(&admin, &pay.id, "approve").await;
    assert_eq!(status, 409, "{body}");
    // The approved wire's retry is decided by version 2 and its approval
    // is gone.
    let (status, body) = curl(&wire(&h, "wire-7", "700"), &[]).await;
    assert_eq!(status, 403, "{body}");
    let record = h.approvals.get(&wire_approval.id).await.unwrap();
    assert_eq!(record.state.name(), "cancelled");
    assert!(h.api.requests().is_empty(), "{:?}", h.api.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_approvals_are_capped_per_agent() {
    let h = Harness::start(Options {
        max_pending: 3,
        ..Options::default()
    })
    .await;
    let mut held = Vec::new();
    for id in 1..=3 {
        held.push(background(
            mcp_call(
                &h,
                id,
                "refund",
                json!({"amount": 500}),
                &["Mcp-Session-Id: s-1"],
            ),
            "20",
        ));
    }
    pending(&h, 3).await;
    let (status, body) = curl(
        &mcp_call(
            &h,
            4,
            "refund",
            json!({"amount": 500}),
            &["Mcp-Session-Id: s-1"],
        ),
        &["--max-time", "5"],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = &json_of(&body)["error"]["data"];
    assert_eq!(data["reason"], "too_many_pending_approvals", "{body}");
    assert!(
        data["message"].as_str().unwrap().contains("3 approvals"),
        "{body}"
    );
    // REST too, with 429.
    let (status, body) = curl(&wire(&h, "wire-cap", "500"), &["--max-time", "5"]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(h.approvals.list(None).await.unwrap().len(), 3);
    // A retry of a held call still attaches to its approval.
    let retry = background(
        mcp_call(
            &h,
            2,
            "refund",
            json!({"amount": 500}),
            &["Mcp-Session-Id: s-1"],
        ),
        "3",
    );
    let (status, _) = retry.await.unwrap();
    assert_eq!(status, 0, "still held when curl gave up");
    for call in held {
        call.abort();
    }
    assert!(h.api.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_names_the_policy_cannot_match_exactly_are_refused() {
    let h = Harness::start(Options::default()).await;
    for name in [
        "Delete_Customer",
        "delete_customer ",
        " delete_customer",
        "delete_customer\u{0}",
        "delete_customer\n",
        "delete_customer\u{200b}",
        "d\u{0435}lete_customer",
        "delete customer",
        "",
    ] {
        let (status, body) = curl(
            &mcp_call(&h, 5, name, json!({"customer_id": "c-1"}), &[]),
            &["--max-time", "5"],
        )
        .await;
        assert_eq!(status, 200, "{name:?}: {body}");
        let error = &json_of(&body)["error"];
        assert_eq!(error["code"], -32602, "{name:?}: {body}");
        let reason = error["data"]["reason"].as_str().unwrap_or_default();
        assert!(
            ["confusable_tool_name", "invalid_tool_name"].contains(&reason),
            "{name:?}: {body}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(
            message.is_ascii() && !message.contains('\u{0}'),
            "the name is shown escaped: {message:?}"
        );
    }
    assert!(h.approvals.list(None).await.unwrap().is_empty());
    assert!(h.api.requests().is_empty(), "{:?}", h.api.requests());
    // The exact name is decided as before (denied by its rule).
    let (_, body) = curl(
        &mcp_call(&h, 6, "delete_customer", json!({"customer_id": "c-1"}), &[]),
        &[],
    )
    .await;
    assert_eq!(json_of(&body)["error"]["data"]["reason"], "policy_deny");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_paths_that_only_look_like_a_declared_route_are_refused() {
    let h = Harness::start(Options::default()).await;
    // `DELETE /v1/vendors` is tier 4 with quarantine; these look-alikes
    // would otherwise be undeclared, tier-3 approvals.
    for path in [
        "/v1/Vendors",
        "/v1/vend%6Frs",
        "/v1/vendors%20",
        "/v1/vendors%00",
        "/v1//vendors",
        "/v1/./vendors",
    ] {
        for proto in ["--http1.1", "--http2"] {
            let (status, body) = curl(
                &h.explicit_args(),
                &[
                    proto,
                    "--path-as-is",
                    "--max-time",
                    "5",
                    "-X",
                    "DELETE",
                    &h.url(path),
                ],
            )
            .await;
            assert_eq!(status, 400, "{path} {proto}: {body}");
            let err = &json_of(&body)["error"];
            // Paths whose segments change once decoded are refused before
            // any route is matched; the rest as look-alikes of a route.
            if err["reason"] != "ambiguous_path" {
                assert_eq!(err["reason"], "confusable_route", "{path}: {body}");
                assert!(
                    err["message"]
                        .as_str()
                        .unwrap()
                        .contains("erp.delete_vendors"),
                    "{body}"
                );
            }
        }
    }
    assert!(h.approvals.list(None).await.unwrap().is_empty());
    assert!(h.api.requests().is_empty(), "{:?}", h.api.requests());
    // An undeclared route that resembles nothing is still held (tier 3).
    let (status, _) = curl(
        &h.explicit_args(),
        &["--max-time", "2", &h.url("/v1/reports")],
    )
    .await;
    assert_eq!(status, 0, "held until curl gave up");
    assert_eq!(h.approvals.list(Some("pending")).await.unwrap().len(), 1);
}
