//! The tool gateway end to end with real clients (curl, Python requests)
//! and a real HTTPS tool API: TLS termination through the explicit proxy
//! and the transparent listener, credential injection, trace context, the
//! four tiers, approvals surviving a restart, and the request limits. The
//! kernel side (quarantine as EPERM) is in `tests/tests/gateway.rs` of the
//! privileged suite.

use std::time::Duration;

use agent_sidecar::approvals::ApprovalId;
use agent_sidecar_test_support::{
    curl::{curl, json_of},
    sidecar::gateway::{Harness, Options},
    temp::TempDir,
    tool_api::{HOST, SECRET, STREAM_PATH},
};
use serde_json::{Value, json};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_1_through_the_explicit_proxy_injects_the_credential_and_keeps_the_trace() {
    let h = Harness::start(Options::default()).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, body) = curl(
        &h.explicit_args(),
        &[
            "-H",
            "Authorization: Bearer agent-made-this-up",
            "-H",
            &format!("traceparent: {tp}"),
            &h.url("/v1/invoices?limit=5"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(SECRET));
    let seen = h.api.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/v1/invoices?limit=5");
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {SECRET}"));
    let upstream_tp = &seen[0].headers["traceparent"];
    assert!(
        upstream_tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{upstream_tp}"
    );
    assert_ne!(upstream_tp, tp, "the gateway is a hop of its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_mode_with_curl_http2_and_python_requests() {
    let h = Harness::start(Options::default()).await;
    let (status, body) = curl(
        &h.transparent_args(),
        &[
            "--http2",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"amount": 20}"#,
            &h.url("/v1/payments"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["ok"], true);
    // Python requests, trusting the agent bundle, through the explicit proxy.
    let script = format!(
        "import requests, json\nr = requests.post('{}', json={{'amount': 30}}, headers={{'Authorization': 'Bearer nope'}})\nprint(r.status_code)\n",
        h.url("/v1/payments")
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .env("HTTPS_PROXY", format!("http://{}", h.proxies.explicit))
        .env("REQUESTS_CA_BUNDLE", &h.bundle.bundle)
        .output()
        .await
        .expect("python runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = h.api.requests();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|r| r.headers["authorization"] == format!("Bearer {SECRET}"))
    );
    assert_eq!(json_of(&seen[1].body)["amount"], 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_4_blocks_alerts_the_soc_and_quarantines_until_released() {
    let h = Harness::start(Options::default()).await;
    let (status, body) = curl(&h.explicit_args(), &["-X", "DELETE", &h.url("/v1/vendors")]).await;
    assert_eq!(status, 403, "{body}");
    let err = &json_of(&body)["error"];
    assert_eq!(err["reason"], "tier_4_halt");
    assert_eq!(err["rules"], json!(["no-mass-delete"]));
    assert_eq!(err["policy_version"]["label"], "gateway-test");
    let alert = h.soc.wait_for("action.halted").await;
    assert_eq!(alert["quarantined"], true);
    assert_eq!(alert["agent"]["owner"], "jane@example.test");
    h.owner.wait_for("action.halted").await;
    // Quarantined: even a tier-1 call is refused now.
    let (status, body) = curl(&h.explicit_args(), &[&h.url("/v1/invoices")]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(json_of(&body)["error"]["reason"], "quarantined");
    assert!(h.api.requests().is_empty());
    // An operator releases the agent through the admin API.
    let admin = h.admin("an-admin-token-of-some-length").await;
    let (status, body) = curl(
        &[],
        &[
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer an-admin-token-of-some-length",
            "-d",
            r#"{"operator": "sam@soc", "reason": "false positive"}"#,
            &format!("{admin}/v1/quarantine/release"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = curl(&h.explicit_args(), &[&h.url("/v1/invoices")]).await;
    assert_eq!(status, 200);
}

/// Waits for exactly one pending approval and returns its id.
async fn pending_id(h: &Harness) -> String {
    for _ in 0..200 {
        let list = h.approvals.list(Some("pending")).await.unwrap();
        if let Some(a) = list.first() {
            return a.id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no pending approval");
}

fn big_payment(h: &Harness, key: &str) -> Vec<String> {
    let mut args = h.explicit_args();
    args.extend(
        [
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-H",
            &format!("Idempotency-Key: {key}"),
            "-d",
            r#"{"amount": 5000}"#,
        ]
        .map(String::from),
    );
    args.push(h.url("/v1/payments"));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_3_is_held_then_forwarded_once_on_approval() {
    let h = Harness::start(Options::default()).await;
    let args = big_payment(&h, "order-17");
    let call = tokio::spawn(async move { curl(&args, &[]).await });
    let id = pending_id(&h).await;
    assert!(h.api.requests().is_empty(), "held, not forwarded");
    // A retry with the same key attaches to the same approval.
    let retry_args = big_payment(&h, "order-17");
    let retry = tokio::spawn(async move { curl(&retry_args, &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.approvals.list(None).await.unwrap().len(), 1);
    h.approvals
        .approve(
            &ApprovalId::parse(&id).unwrap(),
            "cfo@example.test",
            "vendor known",
        )
        .await
        .unwrap();
    let (a, b) = (call.await.unwrap(), retry.await.unwrap());
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    assert_eq!(h.api.requests().len(), 1, "forwarded exactly once");
    let record = h
        .approvals
        .get(&ApprovalId::parse(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(record.state.name(), "forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_3_denied_and_expired_never_reach_the_tool() {
    let h = Harness::start(Options {
        sla: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    let args = big_payment(&h, "deny-me");
    let call = tokio::spawn(async move { curl(&args, &[]).await });
    let id = pending_id(&h).await;
    h.approvals
        .deny(
            &ApprovalId::parse(&id).unwrap(),
            "cfo@example.test",
            "unknown vendor",
        )
        .await
        .unwrap();
    let (status, body) = call.await.unwrap();
    assert_eq!(status, 403, "{body}");
    let err = &json_of(&body)["error"];
    assert_eq!(err["reason"], "approval_denied");
    assert!(err["message"].as_str().unwrap().contains("unknown vendor"));
    assert_eq!(err["approval_id"], id);
    // Nobody answers this one: denied when the SLA passes.
    let (status, body) = curl(&big_payment(&h, "expire-me"), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(json_of(&body)["error"]["reason"], "approval_expired");
    assert!(h.api.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_approval_survives_a_restart_and_is_forwarded_once() {
    let state = TempDir::new();
    let approvals = state.0.join("approvals");
    let first = Harness::start(Options {
        state: Some(approvals.clone()),
        ..Options::default()
    })
    .await;
    let args = big_payment(&first, "restart-1");
    let held = tokio::spawn(async move { curl(&args, &[]).await });
    let id = pending_id(&first).await;
    // The sidecar goes away: its listeners and the held connection close.
    let Harness {
        upstream_ca,
        api,
        proxies,
        gateway,
        approvals: store,
        ..
    } = first;
    drop(proxies);
    drop(gateway);
    drop(store);
    held.abort();
    // A new sidecar on the same journal.
    let second = Harness::start_with(
        Options {
            state: Some(approvals),
            ..Options::default()
        },
        upstream_ca,
        api,
    )
    .await;
    let pending = second.approvals.list(Some("pending")).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].id.to_string(), id);
    second
        .approvals
        .approve(&ApprovalId::parse(&id).unwrap(), "cfo@example.test", "ok")
        .await
        .unwrap();
    // The agent retries with its key: it attaches and is forwarded once.
    let (status, body) = curl(&big_payment(&second, "restart-1"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&big_payment(&second, "restart-1"), &[]).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(json_of(&body)["error"]["reason"], "already_forwarded");
    assert_eq!(second.api.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_2_notifies_the_owner_and_can_be_compensated_once() {
    let h = Harness::start(Options::default()).await;
    let (status, body) = curl(
        &h.explicit_args(),
        &[
            "-X",
            "PATCH",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"iban": "DE02", "vendor_version": 7}"#,
            &h.url("/v1/vendors/v-42"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let notice = h.owner.wait_for("action.supervised").await;
    // The owner sees what the agent sent, as the policy's redaction keeps
    // it (the IBAN as its keyed hash), and what the undo would send.
    let iban = h.redaction_key.hash_bytes(b"DE02");
    assert_eq!(
        notice["request"]["body"],
        json!({"iban": iban, "vendor_version": 7}),
        "{notice}"
    );
    assert!(!notice.to_string().contains("DE02"), "{notice}");
    assert_eq!(notice["request"]["path"], "/v1/vendors/v-42");
    assert_eq!(
        notice["compensation"]["input"],
        json!({"iban": iban, "vendor_version": 7})
    );
    assert_eq!(
        notice["compensation"]["request"],
        json!({"method": "POST", "path": "/v1/vendors/v-42/revert", "body": {"vendor_version": 7}})
    );
    let comp = notice["compensation"]["id"]
        .as_str()
        .expect("compensation id")
        .to_string();
    let admin = h.admin("an-admin-token-of-some-length").await;
    let trigger = |comp: String| {
        let admin = admin.clone();
        async move {
            curl(
                &[],
                &[
                    "-X",
                    "POST",
                    "-H",
                    "Authorization: Bearer an-admin-token-of-some-length",
                    "-d",
                    r#"{"reason": "wrong vendor"}"#,
                    &format!("{admin}/v1/compensations/{comp}/trigger"),
                ],
            )
            .await
        }
    };
    let (status, body) = trigger(comp.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["upstream_status"], 200);
    let seen = h.api.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("POST", "/v1/vendors/v-42/revert")
    );
    assert_eq!(seen[1].headers["authorization"], format!("Bearer {SECRET}"));
    assert_eq!(
        json_of(&seen[1].body),
        json!({"vendor_version": 7, "reason": "wrong vendor"}),
        "only the declared `carry` fields of the agent's body, and the owner's"
    );
    let (status, _) = trigger(comp).await;
    assert_eq!(status, 409, "a compensation runs once");
}

/// POSTs one MCP message through the explicit proxy to [`STREAM_PATH`],
/// whose answer stays open: curl prints what arrives within 3 s.
async fn post_to_open_stream(h: &Harness, message: &Value) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "3"])
        .args(h.explicit_args())
        .args([
            "-H",
            "content-type: application/json",
            "-H",
            "accept: application/json, text/event-stream",
            "-d",
            &message.to_string(),
            &h.url(STREAM_PATH),
        ])
        .output()
        .await
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_answers_on_a_stream_left_open_reach_the_agent_at_once() {
    let h = Harness::start(Options::default()).await;
    let list = post_to_open_stream(
        &h,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert!(
        list.contains("get_customer") && !list.contains("delete_customer"),
        "tools/list filtered and delivered while the stream is open: {list:?}"
    );
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "update_customers", "arguments": {"customer_ids": ["c-1"]}}});
    let answer = post_to_open_stream(&h, &call).await;
    assert!(answer.contains(r#""batch_id":"b-9""#), "{answer:?}");
    let notice = h.owner.wait_for("action.supervised").await;
    let comp = notice["compensation"]["id"]
        .as_str()
        .expect("the supervised call is compensable");
    assert_eq!(h.api.requests().len(), 2);
    // The gateway's own session with the server reads its open streams
    // only as far as its responses too.
    let admin = h.admin("an-admin-token-of-some-length").await;
    let (status, body) = curl(
        &[],
        &[
            "--max-time",
            "10",
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer an-admin-token-of-some-length",
            &format!("{admin}/v1/compensations/{comp}/trigger"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen = h.api.requests();
    let methods: Vec<Value> = seen[2..]
        .iter()
        .map(|r| json_of(&r.body)["method"].clone())
        .collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call"
        ]
    );
    let restore = json_of(&seen[5].body);
    assert_eq!(
        restore["params"],
        json!({"name": "restore_customers", "arguments": {"batch_id": "b-9"}}),
        "batch_id from the original result"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_smuggling_are_refused() {
    let h = Harness::start(Options {
        max_body: 1024,
        ..Options::default()
    })
    .await;
    let big = format!(r#"{{"amount": 1, "pad": "{}"}}"#, "x".repeat(4096));
    // HTTP/1.1: curl 7.88 reports the HTTP/2 stream reset that follows an
    // early 413 as an error instead of showing the answer.
    let (status, body) = curl(
        &h.explicit_args(),
        &[
            "--http1.1",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            &big,
            &h.url("/v1/payments"),
        ],
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(json_of(&body)["error"]["reason"], "body_too_large");
    // Content-Length and Transfer-Encoding together (CL.TE smuggling),
    // written byte for byte over HTTP/1.1: the chunked framing wins, the
    // connection closes after one answer, and the tier-4 request hidden
    // behind it is never parsed.
    let smuggle = "GET /v1/invoices HTTP/1.1\r\nHost: erp.tools.test\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nDELETE /v1/vendors HTTP/1.1\r\nHost: erp.tools.test\r\n\r\n";
    let answer = raw_http1(&h, smuggle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "the smuggled request was served: {answer}"
    );
    // A Transfer-Encoding other than chunked, and obs-fold: 400.
    for bad in [
        "POST /v1/payments HTTP/1.1\r\nHost: erp.tools.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "GET /v1/invoices HTTP/1.1\r\nHost: erp.tools.test\r\nX-A: 1\r\n folded\r\n\r\n",
    ] {
        let answer = raw_http1(&h, bad).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{bad:?}: {answer}");
    }
    let seen: Vec<String> = h
        .api
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(seen, ["GET /v1/invoices"]);
}

/// Sends `request` as-is over TLS (ALPN http/1.1, trusting the agent
/// bundle) through the transparent listener; returns all the gateway wrote
/// before closing.
async fn raw_http1(h: &Harness, request: &str) -> String {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&h.bundle.bundle).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(h.proxies.transparent[&h.api.addr.port()])
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS to the gateway");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_batch_is_decided_per_element() {
    let h = Harness::start(Options::default()).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_customer", "arguments": {"customer_id": "c-1"}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "delete_customer", "arguments": {"customer_id": "c-1"}}},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}
    ]);
    let (status, body) = curl(
        &h.explicit_args(),
        &[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-H",
            "accept: application/json, text/event-stream",
            "-d",
            &batch.to_string(),
            &h.url("/mcp"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The upstream got the allowed call and the notification, not the
    // denied call, with the tool's credential.
    let seen = h.api.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let forwarded = json_of(&seen[0].body);
    let ids: Vec<&Value> = forwarded
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, [&json!(1), &Value::Null], "{forwarded}");
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {SECRET}"));
    // The agent got the upstream's answer and the gateway's error for id 2.
    let answer = json_of(&body);
    let refused = answer
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == 2)
        .expect("an answer for the refused call");
    assert_eq!(refused["error"]["code"], -32001);
    assert_eq!(
        refused["error"]["data"]["rules"],
        json!(["never-delete-customers"])
    );
}
