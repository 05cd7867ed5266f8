//! What the gateway decides is what the tool runs: method overrides,
//! methods no REST tool declares, paths an upstream would split or climb
//! after decoding, and bodies on MCP transport requests are refused before
//! anything reaches the tool, over HTTP/1.1 and HTTP/2, with curl. What
//! comes back never holds the credential the gateway injected.

use agent_sidecar_test_support::{
    sidecar::gateway::{Harness, Options},
    tool_api::{SECRET, STREAM_PATH},
};
use base64::Engine;
use serde_json::{Value, json};
use tokio::process::Command;

/// Runs curl; returns (status, body).
async fn curl(args: &[String], extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(args)
        .args(extra)
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

fn reason(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["error"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// curl arguments for HTTP/1.1 (explicit proxy) and HTTP/2 (transparent).
fn both_versions(h: &Harness) -> Vec<(&'static str, Vec<String>)> {
    let mut h1 = h.explicit_args();
    h1.push("--http1.1".into());
    let mut h2 = h.transparent_args();
    h2.push("--http2".into());
    vec![("HTTP/1.1", h1), ("HTTP/2", h2)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_overrides_and_undeclared_methods_never_reach_the_tool() {
    let h = Harness::start(Options::default()).await;
    let note = h.url("/v1/customers/5/notes");
    let account = h.url("/v1/accounts/7");
    for (version, args) in both_versions(&h) {
        // The same calls without an override are forwarded.
        let (status, body) = curl(&args, &[&account]).await;
        assert_eq!(status, 200, "{version}: {body}");
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                vec![
                    "-X".into(),
                    "POST".into(),
                    "-H".into(),
                    "X-HTTP-Method-Override: DELETE".into(),
                    note.clone(),
                ],
                "method_override",
            ),
            (
                vec!["-H".into(), "x-http-method: DELETE".into(), account.clone()],
                "method_override",
            ),
            (
                vec![
                    "-H".into(),
                    "X-Method-Override: DELETE".into(),
                    account.clone(),
                ],
                "method_override",
            ),
            (
                vec![
                    "-H".into(),
                    "x-HtTp-MeThOd-OvErRiDe: GET".into(),
                    "-H".into(),
                    "X-Http-Method-Override: DELETE".into(),
                    account.clone(),
                ],
                "method_override",
            ),
            (
                vec![
                    "-H".into(),
                    "X-Original-URL: /v1/admin/wipe".into(),
                    account.clone(),
                ],
                "method_override",
            ),
            (vec![format!("{account}?_method=DELETE")], "method_override"),
            (
                vec![format!("{account}?x=1&%5FMETHOD=DELETE")],
                "method_override",
            ),
            (
                vec!["-d".into(), "text=hi&_method=DELETE".into(), note.clone()],
                "method_override",
            ),
            (
                vec!["-F".into(), "_method=DELETE".into(), note.clone()],
                "method_override",
            ),
            (
                vec![
                    "-H".into(),
                    "content-type: application/json".into(),
                    "-d".into(),
                    r#"{"text":"hi","_method":"DELETE"}"#.into(),
                    note.clone(),
                ],
                "method_override",
            ),
            (
                vec!["-X".into(), "TRACE".into(), account.clone()],
                "method_not_allowed",
            ),
            (
                vec!["-X".into(), "PROPFIND".into(), account.clone()],
                "method_not_allowed",
            ),
            (
                vec!["-X".into(), "MOVE".into(), account.clone()],
                "method_not_allowed",
            ),
        ];
        for (extra, want) in cases {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let (status, body) = curl(&args, &extra).await;
            assert!(
                status == 400 || status == 405,
                "{version} {extra:?}: {status} {body}"
            );
            assert_eq!(reason(&body), want, "{version} {extra:?}: {body}");
        }
    }
    let seen = h.api.requests();
    assert_eq!(
        seen.len(),
        2,
        "only the plain calls reach the tool: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|r| r.method == "GET" && r.path == "/v1/accounts/7")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_separators_and_dot_segments_never_match_a_placeholder() {
    let h = Harness::start(Options::default()).await;
    for (version, args) in both_versions(&h) {
        let (status, body) = curl(&args, &[&h.url("/v1/accounts/42")]).await;
        assert_eq!(status, 200, "{version}: {body}");
        for path in [
            "/v1/accounts/42%2Fsecrets",
            "/v1/accounts/42%2fsecrets",
            "/v1/accounts/42%252Fsecrets",
            "/v1/accounts/42%5Csecrets",
            "/v1/accounts/..%2Fadmin%2Fwipe",
            "/v1/accounts/%2E%2E",
            "/v1/accounts/..",
            "/v1/accounts/42;x=1",
            "/v1/accounts/..;",
            "/v1/accounts/42%00",
            "/v1/accounts/%C0%AF",
            "/v1/accounts/42%zz",
            "/v1/%61ccounts/42",
            "/v1//accounts/42",
        ] {
            let (status, body) = curl(&args, &["--path-as-is", &h.url(path)]).await;
            assert_eq!(status, 400, "{version} {path}: {body}");
            assert_eq!(reason(&body), "ambiguous_path", "{version} {path}: {body}");
        }
    }
    let seen = h.api.requests();
    assert_eq!(
        seen.len(),
        2,
        "only the plain calls reach the tool: {seen:?}"
    );
    assert!(seen.iter().all(|r| r.path == "/v1/accounts/42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_get_and_delete_with_a_body_never_reach_the_server() {
    let h = Harness::start(Options::default()).await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_customer","arguments":{"id":5}}}"#;
    let mcp = h.url("/mcp");
    for (version, args) in both_versions(&h) {
        // A plain GET (the server's event stream) is forwarded.
        let (status, body) = curl(&args, &[&mcp]).await;
        assert_eq!(status, 200, "{version}: {body}");
        for extra in [
            vec![
                "-X",
                "GET",
                "-H",
                "content-type: application/json",
                "-d",
                call,
            ],
            vec![
                "-X",
                "DELETE",
                "-H",
                "content-type: application/json",
                "-d",
                call,
            ],
            vec!["-X", "GET", "-H", "Transfer-Encoding: chunked", "-d", call],
            vec!["-X", "PUT", "-d", call],
            vec!["-X", "PATCH", "-d", call],
            vec!["-X", "OPTIONS"],
        ] {
            let mut extra = extra.clone();
            extra.push(&mcp);
            if version == "HTTP/2" && extra[0] == "-X" && extra[1] == "GET" {
                // HTTP/2 DATA frames without any length announced.
                let mut bare = vec!["-X", "GET", "-H", "Content-Length:", "-d", call];
                bare.push(&mcp);
                let (status, body) = curl(&args, &bare).await;
                assert_eq!(status, 400, "{version} {bare:?}: {body}");
            }
            let (status, body) = curl(&args, &extra).await;
            assert!(
                status == 400 || status == 405,
                "{version} {extra:?}: {status} {body}"
            );
            let r = reason(&body);
            assert!(
                r == "body_on_mcp_transport" || r == "method_not_allowed" || r == "bad_framing",
                "{version} {extra:?}: {body}"
            );
        }
    }
    let seen = h.api.requests();
    assert_eq!(
        seen.len(),
        2,
        "only the plain GETs reach the server: {seen:?}"
    );
    assert!(seen.iter().all(|r| r.method == "GET" && r.body.is_empty()));
}

/// Every form of the injected credential a tool may echo.
fn credential_forms() -> Vec<String> {
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let auth = format!("Bearer {SECRET}");
    vec![
        SECRET.to_string(),
        SECRET.to_ascii_uppercase(),
        b64(&auth)[..16].to_string(),
        b64(SECRET)[..16].to_string(),
        b64(&format!("api:{SECRET}"))[8..24].to_string(),
        // The middle of the secret, wherever it was cut.
        SECRET[6..16].to_string(),
    ]
}

fn assert_no_credential(what: &str, text: &str) {
    for form in credential_forms() {
        assert!(!text.contains(&form), "{what} leaks `{form}`: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_injected_credential_never_comes_back_to_the_agent() {
    let h = Harness::start(Options::default()).await;
    for (version, args) in both_versions(&h) {
        for kind in ["json", "error", "encoded", "stream"] {
            let mut extra = vec!["-N", "-i"];
            let url = h.url(&format!("/v1/echo/{kind}"));
            extra.push(&url);
            let (status, body) = curl(&args, &extra).await;
            assert!(
                status == 200 || status == 401,
                "{version} {kind}: {status} {body}"
            );
            assert!(body.contains("[redacted]"), "{version} {kind}: {body}");
            assert_no_credential(&format!("{version} {kind}"), &body);
        }
        // An answer the gateway cannot search is not passed on.
        let (status, body) = curl(&args, &[&h.url("/v1/echo/gzip")]).await;
        assert_eq!(status, 502, "{version}: {body}");
        assert_eq!(reason(&body), "answer_encoded", "{version}: {body}");
        assert_no_credential(&format!("{version} gzip"), &body);
    }
    // The tool did receive it.
    let seen = h.api.requests();
    assert!(
        seen.iter()
            .all(|r| r.headers["authorization"] == format!("Bearer {SECRET}"))
    );
    // Python requests reads the streamed echo too.
    let script = format!(
        "import requests\nr = requests.get('{}', stream=True)\nprint(''.join(c.decode() for c in r.iter_content(chunk_size=None)))\n",
        h.url("/v1/echo/stream")
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .env("HTTPS_PROXY", format!("http://{}", h.proxies.explicit))
        .env("REQUESTS_CA_BUNDLE", &h.bundle.bundle)
        .output()
        .await
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[redacted]"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_credential("python stream", &text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_answers_never_carry_the_injected_credential() {
    let h = Harness::start(Options::default()).await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "get_customer", "arguments": {"id": "c-1", "echo": true}}});
    let out = Command::new("curl")
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
    assert!(answer.contains(r#""id":7"#), "{answer}");
    assert!(answer.contains("[redacted]"), "{answer}");
    assert_no_credential("MCP answer", &answer);
}

/// POSTs `message` to the MCP server whose answers stay open; returns
/// (status, what arrived within 3 s).
async fn post_mcp(h: &Harness, message: &Value) -> (u16, String) {
    curl(
        &h.explicit_args(),
        &[
            "-N",
            "--max-time",
            "3",
            "-H",
            "content-type: application/json",
            "-H",
            "accept: application/json, text/event-stream",
            "-d",
            &message.to_string(),
            &h.url(STREAM_PATH),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_and_responses_nobody_awaits_are_governed_both_ways() {
    let h = Harness::start(Options::default()).await;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "get_customer", "arguments": {"id": "c-1", "mischief": true}}});
    let (_, answer) = post_mcp(&h, &call).await;
    assert!(answer.contains(r#""batch_id":"b-9""#), "{answer}");
    assert!(answer.contains("roots/list"), "allowed by policy: {answer}");
    assert!(answer.contains("notifications/message"), "{answer}");
    for absent in [
        "sampling/createMessage",
        "elicitation/create",
        r#""forged":true"#,
        r#""second":true"#,
    ] {
        assert!(
            !answer.contains(absent),
            "`{absent}` reached the agent: {answer}"
        );
    }
    // The server got the gateway's refusals of its own requests.
    let refused = |id: &str| {
        h.api.requests().iter().any(|r| {
            serde_json::from_str::<Value>(&r.body).is_ok_and(|v| {
                v["id"] == id && v["error"]["code"] == -32001 && v.get("result").is_none()
            })
        })
    };
    for _ in 0..100 {
        if refused("srv-1") && refused("srv-2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        refused("srv-1") && refused("srv-2"),
        "{:?}",
        h.api.requests()
    );
    assert!(!refused("srv-3"));
    // The agent answers: only the request it was given, once.
    let answers = json!([
        {"jsonrpc": "2.0", "id": "srv-3", "result": {"roots": []}},
        {"jsonrpc": "2.0", "id": "srv-1", "result": {"model": "agent-made"}}
    ]);
    let (status, body) = post_mcp(&h, &answers).await;
    assert_eq!(status, 202, "{body}");
    let again = json!({"jsonrpc": "2.0", "id": "srv-3", "result": {"roots": ["/again"]}});
    let (status, body) = post_mcp(&h, &again).await;
    assert_eq!(status, 202, "{body}");
    let bodies: Vec<String> = h.api.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.contains(r#""roots":[]"#))
            .count(),
        1,
        "{bodies:?}"
    );
    assert!(
        !bodies
            .iter()
            .any(|b| b.contains("agent-made") || b.contains("/again")),
        "{bodies:?}"
    );
}
