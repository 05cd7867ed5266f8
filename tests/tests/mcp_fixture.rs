//! The MCP fixtures themselves work: the SDK's client against the SDK-built
//! test server, TLS with the test CA, inside a fresh namespace and outside any
//! governed cgroup, in both response modes (SSE streams and plain JSON). A
//! failure of a gateway test is then never a broken fixture.

use agent_sidecar_test_support::{
    ca::TestCa,
    mcp::{McpServer, mcp_client_args, parse_client_output, test_python},
};
use agent_sidecar_tests::{NetNs, command_in, privileged};
use serde_json::json;

const TOOLS: [&str; 6] = [
    "get_customer",
    "update_customers",
    "restore_customers",
    "refund",
    "export_customers",
    "delete_customer",
];

fn check(json_response: bool) {
    // First, so that a missing venv fails even where the test cannot run.
    let python = test_python();
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let ca = TestCa::new();
    // The name and the IP: the client connects by address here.
    let (cert, key) = ca.issue("crm", &["crm.tools.test", "10.77.0.1"]);
    let server = McpServer::start(&ns, "10.77.0.1:443", &cert, &key, json_response);

    let args = mcp_client_args(
        &server.url,
        Some("get_customer"),
        Some(&json!({"customer_id": "c-42"})),
        &[
            ("Authorization", "Bearer fixture-token"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = command_in(&ns, None, &python, &args)
        .env("SSL_CERT_FILE", ca.ca_file())
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .expect("run mcp_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mcp_client.py failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let result = parse_client_output(&stdout);

    let mut tools = result.tools.clone();
    tools.sort();
    let mut want = TOOLS.map(String::from).to_vec();
    want.sort();
    assert_eq!(tools, want, "tools/list: {result:?}");

    let call = result.call.as_ref().expect("a tools/call outcome");
    assert!(call.ok && !call.is_error, "tools/call: {call:?}");
    assert!(call.error.is_none(), "tools/call: {call:?}");
    let content = call.content.as_ref().expect("content");
    assert!(
        content.to_string().contains("c-42"),
        "content names the customer: {content}"
    );
    assert_eq!(
        call.structured.as_ref().and_then(|s| s.get("id")),
        Some(&json!("c-42"))
    );

    let calls = server.calls();
    assert_eq!(calls.len(), 1, "exactly one call logged: {calls:?}");
    assert_eq!(calls[0]["tool"], "get_customer");
    assert_eq!(calls[0]["arguments"], json!({"customer_id": "c-42"}));
    assert_eq!(calls[0]["authorization"], "Bearer fixture-token");
    assert_eq!(
        calls[0]["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
}

#[test]
fn mcp_fixture_sse_responses() {
    check(false);
}

#[test]
fn mcp_fixture_json_responses() {
    check(true);
}
