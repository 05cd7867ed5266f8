//! Tier-2 compensations built from what the policy declares, with curl as
//! the agent and a real HTTPS tool API (REST and an MCP server that keeps
//! its SSE answers open): nothing the agent sent beyond the declared
//! `carry` fields reaches the compensating call, and a path value that is
//! not a plain segment never turns the undo into another route.

use agent_sidecar_test_support::{
    curl::{curl, json_of},
    sidecar::gateway::{Harness, Options},
    tool_api::STREAM_PATH,
};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "an-admin-token-of-some-length";

async fn trigger(h: &Harness, id: &str, body: &str) -> (u16, String) {
    let admin = h.admin(ADMIN_TOKEN).await;
    curl(
        &[],
        &[
            "--max-time",
            "10",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {ADMIN_TOKEN}"),
            "-d",
            body,
            &format!("{admin}/v1/compensations/{id}/trigger"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_value_that_is_not_a_plain_segment_never_reaches_the_compensation() {
    let h = Harness::start(Options::default()).await;
    let crafted = "/v1/vendors/..%2F..%2Fpayments";
    let (status, body) = curl(
        &h.explicit_args(),
        &[
            "--path-as-is",
            "-X",
            "PATCH",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"vendor_version": 1, "amount": 900000}"#,
            &h.url(crafted),
        ],
    )
    .await;
    if status != 200 {
        // Refused before it was forwarded: nothing to compensate.
        assert!(h.api.requests().is_empty(), "{body}");
        return;
    }
    let notice = h.owner.wait_for("action.supervised").await;
    let id = notice["compensation"]["id"].as_str().unwrap().to_string();
    assert!(
        notice["compensation"]["request"]["path"]
            .as_str()
            .unwrap()
            .contains("cannot be filled"),
        "{notice}"
    );
    let (status, body) = trigger(&h, &id, "{}").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("not a plain path segment"), "{body}");
    let seen: Vec<String> = h.api.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(seen, [crafted], "only the original call was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_compensation_arguments_come_from_the_result_not_the_agent() {
    let h = Harness::start(Options::default()).await;
    // The agent slips `batch_id` into its own arguments, hoping the undo
    // will restore that batch instead of the one the server created.
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "update_customers",
        "arguments": {"customer_ids": ["c-1"], "batch_id": "someone-elses-batch"}}});
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-N", "--max-time", "3"])
        .args(h.explicit_args())
        .args([
            "-H",
            "content-type: application/json",
            "-H",
            "accept: application/json, text/event-stream",
            "-d",
            &call.to_string(),
            &h.url(STREAM_PATH),
        ])
        .output()
        .await
        .expect("curl runs");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.contains(r#""batch_id":"b-9""#), "{answer}");
    let notice = h.owner.wait_for("action.supervised").await;
    assert_eq!(
        notice["compensation"]["input"]["batch_id"], "someone-elses-batch",
        "the owner sees what the agent sent: {notice}"
    );
    assert_eq!(
        notice["request"]["arguments"]["batch_id"], "someone-elses-batch",
        "{notice}"
    );
    assert_eq!(
        notice["compensation"]["request"]["arguments"],
        json!({}),
        "nothing of it is carried: {notice}"
    );
    let id = notice["compensation"]["id"].as_str().unwrap().to_string();
    let (status, body) = trigger(&h, &id, "{}").await;
    assert_eq!(status, 200, "{body}");
    let restore = h
        .api
        .requests()
        .into_iter()
        .map(|r| json_of(&r.body))
        .find(|m| m["method"] == "tools/call" && m["params"]["name"] == "restore_customers")
        .expect("the compensating call");
    assert_eq!(
        restore["params"]["arguments"],
        json!({"batch_id": "b-9"}),
        "from the server's result only"
    );
    let _: Value = restore;
}
