//! A two-agent workflow through two real gateways: an orchestrator (A)
//! calls a sub-agent (B) through A's sidecar, which mints a narrowed
//! delegation token and calls B's sidecar endpoint over mutual TLS with
//! fleet identities; B's sidecar admits the token and narrows every tool
//! call B makes for the task to the delegation, even where B's own policy
//! would allow more; one trace id runs through both agents' records; B's
//! answer is checked against A's declared schema. The real `curl` plays
//! both agents' HTTP clients and the attacker's.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use agent_sidecar::{
    delegation::{
        TOKEN_HEADER, fleet_ca,
        identity::{AgentIdentity, IdentityFiles},
        sessions::Sessions,
        token::{DelegationPolicy, mint},
    },
    events::{ActionEvent, ActionSink},
    gateway::{
        A2aConfig,
        inbound::{DELEGATOR_HEADER, Inbound, accepts_from_policy},
    },
};
use agent_sidecar_test_support::{
    curl::{curl, json_of},
    sidecar::gateway::{Harness, Options},
    temp::TempDir,
};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const TD: &str = "fleet.test";
const A_ID: &str = "spiffe://fleet.test/team/ops/agent/orchestrator";
const B_ID: &str = "spiffe://fleet.test/team/research/agent/researcher";
const B_HOST: &str = "researcher.research.fleet.test";

/// Tool calls each gateway ended: (trace id, tool.action, reason).
#[derive(Default)]
struct Calls(Mutex<Vec<(String, String, Option<String>)>>);

impl ActionSink for Calls {
    fn consume(&self, event: ActionEvent<'_>) {
        if let ActionEvent::ToolCall(e) = event {
            let trace = e.traceparent.split('-').nth(1).unwrap_or("").to_string();
            let name = format!(
                "{}.{}",
                e.action.tool.as_deref().unwrap_or("-"),
                e.action.action.as_deref().unwrap_or("-")
            );
            self.0.lock().unwrap().push((trace, name, e.reason.clone()));
        }
    }
}

impl Calls {
    fn of(&self, trace: &str) -> Vec<(String, Option<String>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| t == trace)
            .map(|(_, n, r)| (n.clone(), r.clone()))
            .collect()
    }
}

fn issue(ca: &Path, out: &Path, team: &str, agent: &str) -> Arc<IdentityFiles> {
    let issued =
        fleet_ca::issue(ca, team, agent, Duration::from_secs(3600), Duration::ZERO).unwrap();
    let (cert, key) = fleet_ca::write_issued(&issued, out, agent).unwrap();
    Arc::new(IdentityFiles::open(cert, key, ca.join(fleet_ca::CA_CERT)).unwrap())
}

/// Agent B: answers `POST /research` by calling its ERP through its own
/// sidecar (explicit proxy) under the trace it was given: the invoice list
/// and an echo, both tier 1 in B's own policy. `{"mode":"bad"}` answers
/// off-schema (a compromised B).
async fn start_agent_b(
    proxy: Vec<String>,
    erp: String,
    seen: Arc<Mutex<Vec<String>>>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (proxy, erp, seen) = (proxy.clone(), erp.clone(), seen.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (proxy, erp, seen) = (proxy.clone(), erp.clone(), seen.clone());
                    async move {
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        let (tp, delegator) = (h("traceparent"), h(DELEGATOR_HEADER));
                        seen.lock()
                            .unwrap()
                            .push(format!("{delegator} token={}", h(TOKEN_HEADER)));
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let bad = String::from_utf8_lossy(&body).contains("bad");
                        let tph = format!("traceparent: {tp}");
                        let (s1, _) =
                            curl(&proxy, &["-H", &tph, &format!("{erp}/v1/invoices")]).await;
                        let (s2, _) =
                            curl(&proxy, &["-H", &tph, &format!("{erp}/v1/echo/x")]).await;
                        let answer = if bad {
                            serde_json::json!({"summary": 42, "exfil": "whatever B wants"})
                        } else {
                            serde_json::json!({"summary": "2 invoices", "statuses": [s1, s2]})
                        };
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            answer.to_string(),
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

fn a_policy(b_port: u16) -> String {
    format!(
        r#"tools:
  - name: researcher
    http: {{ host: {B_HOST}, port: {b_port} }}
    actions:
      - {{ name: research, method: POST, path: /research }}
delegation:
  delegates:
    - to: {B_ID}
      tool: researcher
      permissions: [erp.list_invoices, erp.get_account]
      answer_schemas:
        research:
          type: object
          required: [summary]
          additionalProperties: false
          properties:
            summary: {{ type: string }}
            statuses: {{ type: array, items: {{ type: integer }} }}
"#
    )
}

fn b_policy() -> String {
    format!("delegation:\n  accept_from: [\"{A_ID}\"]\n  only_delegated: true\n")
}

struct World {
    a: Harness,
    b: Harness,
    a_calls: Arc<Calls>,
    b_calls: Arc<Calls>,
    b_port: u16,
    b_seen: Arc<Mutex<Vec<String>>>,
    ca: std::path::PathBuf,
    ids: std::path::PathBuf,
    a_identity: Arc<IdentityFiles>,
    _dir: TempDir,
}

impl World {
    async fn start() -> World {
        let dir = TempDir::new();
        let ca = dir.0.join("ca");
        fleet_ca::init(TD, &ca, Duration::from_secs(86400)).unwrap();
        let ids = dir.0.join("ids");
        let a_identity = issue(&ca, &ids, "ops", "orchestrator");
        let b_identity = issue(&ca, &ids, "research", "researcher");
        let inbound = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b_port = inbound.local_addr().unwrap().port();
        let sessions = Arc::new(Sessions::default());
        let b = Harness::start(Options {
            agent_policy: Some(b_policy()),
            a2a: Some(A2aConfig {
                identity: b_identity.clone(),
                sessions: sessions.clone(),
                sink: None,
            }),
            ..Options::default()
        })
        .await;
        let b_calls = Arc::new(Calls::default());
        b.events.add(b_calls.clone());
        let b_seen = Arc::default();
        let agent_b = start_agent_b(
            b.explicit_args(),
            b.url("").trim_end_matches('/').into(),
            Arc::clone(&b_seen),
        )
        .await;
        tokio::spawn(
            Inbound {
                agent_id: "buyer".into(),
                identity: b_identity,
                accepts: accepts_from_policy(b.policy.clone(), "buyer".into()),
                sessions,
                forward: format!("http://{agent_b}").parse().unwrap(),
                sink: Some(Arc::new(b.events.clone())),
                timeout: Duration::from_secs(30),
            }
            .serve(inbound),
        );
        let a = Harness::start(Options {
            agent_policy: Some(a_policy(b_port)),
            a2a: Some(A2aConfig {
                identity: a_identity.clone(),
                sessions: Arc::new(Sessions::default()),
                sink: None,
            }),
            extra_hosts: vec![B_HOST.into()],
            ..Options::default()
        })
        .await;
        let a_calls = Arc::new(Calls::default());
        a.events.add(a_calls.clone());
        World {
            a,
            b,
            a_calls,
            b_calls,
            b_port,
            b_seen,
            ca,
            ids,
            a_identity,
            _dir: dir,
        }
    }

    /// Agent A asks B to research, through A's sidecar.
    async fn research(&self, trace: &str, extra: &[&str], body: &str) -> (u16, String) {
        let tp = format!("traceparent: 00-{trace}-1111111111111111-01");
        let url = format!("https://{B_HOST}:{}/research", self.b_port);
        let mut args = vec![
            "-H",
            tp.as_str(),
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&self.a.explicit_args(), &args).await
    }

    /// curl straight at B's endpoint (the attacker, or a sidecar-less
    /// agent), with the fleet CA trusted and `cert` as client identity.
    async fn direct(&self, cert: Option<&str>, token: Option<&str>) -> (u16, String) {
        let mut args: Vec<String> = vec![
            "--resolve".into(),
            format!("{B_HOST}:{}:127.0.0.1", self.b_port),
            "--cacert".into(),
            self.ca.join(fleet_ca::CA_CERT).display().to_string(),
            "-d".into(),
            "{}".into(),
        ];
        if let Some(c) = cert {
            args.extend([
                "--cert".into(),
                self.ids.join(format!("{c}.pem")).display().to_string(),
                "--key".into(),
                self.ids.join(format!("{c}.key")).display().to_string(),
            ]);
        }
        if let Some(t) = token {
            args.extend(["-H".into(), format!("{TOKEN_HEADER}: {t}")]);
        }
        curl(
            &args,
            &[&format!("https://{B_HOST}:{}/research", self.b_port)],
        )
        .await
    }
}

fn mint_as(who: &AgentIdentity, perms: &[&str]) -> String {
    let may = DelegationPolicy {
        may_delegate: [(
            B_ID.to_string(),
            perms.iter().map(|s| s.to_string()).collect(),
        )]
        .into(),
    };
    mint(who, &may, B_ID, None, Duration::from_secs(60))
        .unwrap()
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delegated_task_is_narrowed_to_the_delegation_and_one_trace_links_both_agents() {
    let w = World::start().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (status, body) = w.research(trace, &[], r#"{"mode":"ok"}"#).await;
    assert_eq!(status, 200, "{body}");
    let answer = json_of(&body);
    // B's invoice list is delegated (200); its echo, tier 1 in B's own
    // policy, is not (403): the delegation, not B's policy, bounds the task.
    assert_eq!(answer["statuses"], serde_json::json!([200, 403]), "{body}");
    // B was told who delegated and never saw the token.
    let seen = w.b_seen.lock().unwrap().clone();
    assert_eq!(seen, vec![format!("{A_ID} token=")]);
    // One trace id in both agents' records.
    assert_eq!(
        w.a_calls.of(trace),
        vec![("researcher.research".into(), None)]
    );
    let b = w.b_calls.of(trace);
    assert_eq!(
        b,
        vec![
            ("erp.list_invoices".into(), None),
            ("erp.echo".into(), Some("not_delegated".into())),
        ]
    );
    assert!(
        w.b.api.requests().iter().all(|r| r.path != "/v1/echo/x"),
        "the refused call never reached the ERP"
    );
    assert_eq!(
        w.a.metric("agent_sidecar_delegations_total{reason=\"\",step=\"minted\"}"),
        1.0
    );
    assert_eq!(
        w.b.metric("agent_sidecar_delegations_total{reason=\"\",step=\"admitted\"}"),
        1.0
    );

    // B cannot step outside the task through another channel: an MCP
    // call under the task's trace (tier 1 in B's own policy) is refused.
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_customer", "arguments": {"customer_id": "c-1"}}});
    let task_tp = format!("traceparent: 00-{trace}-2222222222222222-01");
    let before = w.b.api.requests().len();
    let (status, body) = curl(
        &w.b.explicit_args(),
        &[
            "-H",
            &task_tp,
            "-H",
            "content-type: application/json",
            "-H",
            "accept: application/json, text/event-stream",
            "-d",
            &call.to_string(),
            &w.b.url("/mcp"),
        ],
    )
    .await;
    assert!(body.contains("not_delegated"), "{status} {body}");
    assert_eq!(
        w.b.api.requests().len(),
        before,
        "the MCP call never reached the server"
    );

    // A narrows the delegation for one call: B may only read accounts.
    let narrow = "x-agent-delegate-tools: erp.get_account";
    let trace2 = "5bf92f3577b34da6a3ce929d0e0e4737";
    let (status, body) = w
        .research(trace2, &["-H", narrow], r#"{"mode":"ok"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_of(&body)["statuses"],
        serde_json::json!([403, 403]),
        "{body}"
    );

    // A cannot delegate what its policy does not let it: refused at A,
    // B never called.
    let before = w.b_seen.lock().unwrap().len();
    let widen = "x-agent-delegate-tools: erp.pay";
    let (status, body) = w
        .research(
            "6bf92f3577b34da6a3ce929d0e0e4738",
            &["-H", widen],
            r#"{"mode":"ok"}"#,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("delegation_widened"), "{body}");
    // Nor smuggle its own token past its sidecar.
    let forged = format!(
        "{TOKEN_HEADER}: {}",
        mint_as(&w.a_identity.current().unwrap(), &["erp"])
    );
    let (status, body) = w
        .research(
            "7bf92f3577b34da6a3ce929d0e0e4739",
            &["-H", &forged, "-H", widen],
            "{}",
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(w.b_seen.lock().unwrap().len(), before);

    // B acting outside any delegated task (no trace, or a trace of no
    // task) is refused: B acts only for a delegator.
    let (status, body) = curl(&w.b.explicit_args(), &[&w.b.url("/v1/invoices")]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("delegation_required"), "{body}");
    let made_up = "traceparent: 00-0123456789abcdef0123456789abcdef-1111111111111111-01";
    let (status, _) = curl(
        &w.b.explicit_args(),
        &["-H", made_up, &w.b.url("/v1/invoices")],
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_off_its_schema_never_reaches_the_delegating_agent() {
    let w = World::start().await;
    let (status, body) = w
        .research("8bf92f3577b34da6a3ce929d0e0e4730", &[], r#"{"mode":"bad"}"#)
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("answer_invalid"), "{body}");
    assert!(!body.contains("whatever B wants"), "{body}");
    w.a.soc
        .wait_matching("agent.delegation_refused", |e| {
            e["delegation"]["step"] == "answer_refused"
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_without_a_valid_identity_or_token_are_refused_and_alerted() {
    let w = World::start().await;
    let a = w.a_identity.current().unwrap();
    // No client certificate: the handshake fails; refused and alerted.
    let (status, _) = w.direct(None, None).await;
    assert_eq!(status, 0);
    w.b.soc
        .wait_matching("agent.delegation_refused", |e| {
            e["delegation"]["reason"] == "missing_identity"
        })
        .await;
    // A's identity without a token.
    let (status, body) = w.direct(Some("orchestrator"), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("missing_token"), "{body}");
    // A valid token is single-use: its replay is refused.
    let token = mint_as(&a, &["erp.list_invoices"]);
    let (status, body) = w.direct(Some("orchestrator"), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = w.direct(Some("orchestrator"), Some(&token)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("replay"), "{body}");
    // Another fleet agent's token presented over A's connection.
    let c_dir = w.ids.join("c");
    let c = issue(&w.ca, &c_dir, "ops", "intruder");
    let forged = mint_as(&c.current().unwrap(), &["erp"]);
    let (status, body) = w.direct(Some("orchestrator"), Some(&forged)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("signature"), "{body}");
    // Flipped bytes.
    let mut bytes = mint_as(&a, &["erp"]).into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let (status, _) = w
        .direct(
            Some("orchestrator"),
            Some(&String::from_utf8(bytes).unwrap()),
        )
        .await;
    assert_eq!(status, 403);
    // A fleet agent B's policy does not accept, with its own valid token.
    std::fs::copy(c_dir.join("intruder.pem"), w.ids.join("intruder.pem")).unwrap();
    std::fs::copy(c_dir.join("intruder.key"), w.ids.join("intruder.key")).unwrap();
    let (status, body) = w.direct(Some("intruder"), Some(&forged)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not_accepted"), "{body}");
    w.b.soc
        .wait_matching("agent.delegation_refused", |e| {
            e["delegation"]["reason"] == "not_accepted"
                && e["delegation"]["delegator"] == "spiffe://fleet.test/team/ops/agent/intruder"
        })
        .await;
    for reason in [
        "missing_identity",
        "missing_token",
        "replay",
        "signature",
        "not_accepted",
    ] {
        assert!(
            w.b.metric(&format!(
                "agent_sidecar_delegations_total{{reason=\"{reason}\",step=\"refused\"}}"
            )) >= 1.0,
            "{reason}"
        );
    }
}
