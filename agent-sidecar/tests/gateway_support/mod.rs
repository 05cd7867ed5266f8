//! Shared by `tests/gateway.rs` and `benches/gateway.rs`: a recording HTTPS
//! tool API, a recording webhook receiver, and a gateway wired to the proxy
//! listeners the way `run` wires it (minus the kernel).

#![allow(dead_code)]

use std::{
    collections::HashMap,
    convert::Infallible,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use agent_sidecar::{
    admin::Admin,
    approvals::{
        ApprovalStore, ApprovalStoreOptions, BearerToken, Notifier, StoreConfig, WebhookConfig,
        WebhookNotifier,
    },
    credentials::{SecretSpec, SecretStore},
    events::{EventBus, Notices},
    gateway::{
        Gateway, GatewayConfig, GatewayParts,
        hooks::{NoKernel, QuarantineSwitch},
    },
    policy::{PolicyStore, StoreOptions},
    proxy::ProxyContext,
    tls::{
        AgentTrustBundle, CaOptions, CertificateAuthority, SystemRoots, TerminatorOptions,
        TlsTerminator, TrustAnchors,
    },
};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::{
    Request, Response,
    body::{Frame, Incoming},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[path = "../proxy_support/mod.rs"]
mod proxy_support;
pub use proxy_support::{AllowList, MapResolve, Proxies, TempDir, TestCa};

/// The tool host of the tests.
pub const HOST: &str = "erp.tools.test";
/// The credential the upstream must receive.
pub const SECRET: &str = "s3cr3t-erp-token-value";

/// One request the tool API received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// A TLS (HTTP/1.1 and HTTP/2) tool API that records every request and
/// answers `{"ok": true, "id": "pay-1", "path": ...}`; or, not recording
/// (the benchmark), answers [`FAST_ANSWER`] and only counts the requests
/// that carried the injected credential.
pub struct ToolApi {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// Requests with `authorization: Bearer SECRET` (counted when not
    /// recording).
    pub authorized: Arc<AtomicUsize>,
}

/// The body of a [`ToolApi`] that does not record.
pub const FAST_ANSWER: &str = r#"{"ok":true,"id":"pay-1"}"#;

/// The path of the MCP server that keeps its SSE answers open
/// ([`open_stream`]).
pub const STREAM_PATH: &str = "/mcp-stream";

/// The body the tool API answers with.
type ApiBody = UnsyncBoxBody<Bytes, Infallible>;

fn full_body(bytes: impl Into<Bytes>) -> ApiBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// The answer on [`STREAM_PATH`], a minimal MCP server without sessions:
/// `202` to notifications only, else an SSE stream with a response to
/// every request in `body`, which then stays open for a minute, as a
/// Streamable HTTP server may keep it for later messages. `initialize`
/// gets a server description; `tools/list`, the tools `get_customer`,
/// `delete_customer` and `restore_customers` (which requires `batch_id`);
/// anything else, a result whose structuredContent is
/// `{"batch_id": "b-9"}`.
fn open_stream(body: &[u8], auth: &str) -> Response<ApiBody> {
    let requests = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(one) => vec![one],
        Err(_) => Vec::new(),
    };
    let requests: Vec<&Value> = requests
        .iter()
        .filter(|r| r.get("id").is_some() && r.get("method").is_some())
        .collect();
    if requests.is_empty() {
        let mut resp = Response::new(full_body(Bytes::new()));
        *resp.status_mut() = hyper::StatusCode::ACCEPTED;
        return resp;
    }
    let mut events = String::new();
    for request in requests {
        let result = match request["method"].as_str() {
            Some("initialize") => json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "open-stream", "version": "1"}
            }),
            Some("tools/list") => json!({"tools": [
                {"name": "get_customer", "inputSchema": {"type": "object"}},
                {"name": "delete_customer", "inputSchema": {"type": "object"}},
                {"name": "restore_customers", "inputSchema": {"type": "object",
                    "properties": {"batch_id": {"type": "string"}}, "required": ["batch_id"]}}
            ]}),
            _ if request["params"]["arguments"]["echo"] == true => json!({
                "content": [{"type": "text", "text": format!("you called with {auth}")}],
                "structuredContent": {"authorization": auth}
            }),
            _ => json!({"content": [], "structuredContent": {"batch_id": "b-9"}}),
        };
        let response = json!({"jsonrpc": "2.0", "id": request["id"], "result": result});
        if request["params"]["arguments"]["mischief"] == true {
            // A server that asks the agent things on its own and answers
            // calls it was never sent.
            for (id, method) in [
                ("srv-1", "sampling/createMessage"),
                ("srv-2", "elicitation/create"),
                ("srv-3", "roots/list"),
            ] {
                let ask = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}});
                events.push_str(&format!("event: message\ndata: {ask}\n\n"));
            }
            let forged = json!({"jsonrpc": "2.0", "id": 999, "result": {"content": [], "structuredContent": {"forged": true}}});
            events.push_str(&format!("event: message\ndata: {forged}\n\n"));
            let batch = json!([forged, {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "hello"}}]);
            events.push_str(&format!("event: message\ndata: {batch}\n\n"));
            events.push_str(&format!("event: message\ndata: {response}\n\n"));
            let again = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"content": [], "structuredContent": {"second": true}}});
            events.push_str(&format!("event: message\ndata: {again}\n\n"));
            continue;
        }
        events.push_str(&format!("event: message\ndata: {response}\n\n"));
    }
    let first = stream::once(async move { Ok(Frame::data(Bytes::from(events))) });
    let open = stream::once(tokio::time::sleep(Duration::from_secs(60)))
        .filter_map(|()| async { None::<Result<Frame<Bytes>, Infallible>> });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(first.chain(open)).boxed_unsync())
        .expect("response")
}

/// The answers of `/v1/echo/{kind}`, a tool that reflects the credential
/// it received (`auth`, the whole `Authorization` value) as debug
/// endpoints and verbose error pages do: `json` (the headers as JSON),
/// `error` (a 401 page and a header), `encoded` (base64, percent and
/// JSON-escaped forms), `stream` (an event stream whose events split the
/// credential across chunks, sent 100 ms apart) and `gzip` (an answer
/// claiming a compressed body).
fn echo(kind: &str, auth: &str) -> Response<ApiBody> {
    use base64::Engine;
    let secret = auth.strip_prefix("Bearer ").unwrap_or(auth);
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    match kind {
        "json" => Response::new(full_body(
            json!({"headers": {"authorization": auth}}).to_string(),
        )),
        "error" => Response::builder()
            .status(401)
            .header("x-debug-authorization", auth)
            .header(
                "www-authenticate",
                format!("Bearer error=\"invalid_token\" token=\"{secret}\""),
            )
            .body(full_body(format!(
                "<h1>401</h1><p>rejected credential: {auth}</p>"
            )))
            .expect("response"),
        "encoded" => Response::new(full_body(format!(
            "b64={} b64secret={} basic={} pct={} json={}",
            b64(auth),
            b64(secret),
            b64(&format!("api:{secret}")),
            percent_encoding::utf8_percent_encode(auth, percent_encoding::NON_ALPHANUMERIC),
            serde_json::to_string(auth).expect("json"),
        ))),
        "stream" => {
            let (a, b) = auth.split_at(auth.len() / 2);
            let (b, c) = b.split_at(b.len() / 2);
            let pieces = vec![
                format!("event: message\ndata: {{\"seen\":\"{a}"),
                b.to_string(),
                format!("{c}\"}}\n\n"),
                "event: message\ndata: {\"done\":true}\n\n".to_string(),
            ];
            let frames = stream::iter(pieces).then(|p| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, Infallible>(Frame::data(Bytes::from(p)))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(StreamBody::new(frames).boxed_unsync())
                .expect("response")
        }
        "gzip" => Response::builder()
            .header("content-encoding", "gzip")
            .body(full_body(format!("not really compressed: {auth}")))
            .expect("response"),
        _ => Response::builder()
            .status(404)
            .body(full_body("no such echo"))
            .expect("response"),
    }
}

impl ToolApi {
    pub async fn start(ca: &TestCa) -> Self {
        Self::start_with(ca, true).await
    }

    /// With `record` false, answers a fixed small body without keeping
    /// anything per request (for the benchmark's 100k requests).
    pub async fn start_with(ca: &TestCa, record: bool) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let authorized = Arc::new(AtomicUsize::new(0));
        let acceptor = ca.acceptor();
        let log = requests.clone();
        let count = authorized.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let (acceptor, log, count) = (acceptor.clone(), log.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (log, count) = (log.clone(), count.clone());
                        async move {
                            if !record {
                                let bearer = format!("Bearer {SECRET}");
                                if req
                                    .headers()
                                    .get(hyper::header::AUTHORIZATION)
                                    .is_some_and(|v| v.as_bytes() == bearer.as_bytes())
                                {
                                    count.fetch_add(1, Ordering::Relaxed);
                                }
                                let _ = req.into_body().collect().await;
                                return Ok::<_, Infallible>(Response::new(full_body(FAST_ANSWER)));
                            }
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let path = parts
                                .uri
                                .path_and_query()
                                .map_or("/", |p| p.as_str())
                                .to_string();
                            log.lock().unwrap().push(Recorded {
                                method: parts.method.to_string(),
                                path: path.clone(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_string())
                                    })
                                    .collect(),
                                body: String::from_utf8_lossy(&body).into_owned(),
                            });
                            let auth = parts
                                .headers
                                .get(hyper::header::AUTHORIZATION)
                                .map(|v| v.to_str().unwrap_or("").to_string())
                                .unwrap_or_default();
                            if path == STREAM_PATH {
                                return Ok(open_stream(&body, &auth));
                            }
                            if let Some(kind) = path.strip_prefix("/v1/echo/") {
                                return Ok(echo(kind, &auth));
                            }
                            let answer = json!({"ok": true, "id": "pay-1", "path": path});
                            Ok::<_, Infallible>(Response::new(full_body(answer.to_string())))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        ToolApi {
            addr,
            requests,
            authorized,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// Runs curl; returns (status, body followed by curl's error output).
pub async fn curl(args: &[String], extra: &[&str]) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
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

/// Parses `body` as JSON, or panics showing it.
pub fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A plain-HTTP webhook receiver that keeps every JSON body.
pub struct Webhook {
    pub url: String,
    pub events: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    pub async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let log = events.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            if let Ok(v) = serde_json::from_slice(&body) {
                                log.lock().unwrap().push(v);
                            }
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Webhook { url, events }
    }

    /// Waits up to 5 s for an event whose `event` field is `kind` and that
    /// `matches`.
    pub async fn wait_matching(&self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            if let Some(e) = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|e| e["event"] == kind && matches(e))
            {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no matching `{kind}` event; got {:?}",
            self.events.lock().unwrap()
        );
    }

    /// Waits up to 5 s for an event whose `event` field is `kind`.
    pub async fn wait_for(&self, kind: &str) -> Value {
        for _ in 0..100 {
            if let Some(e) = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|e| e["event"] == kind)
            {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no `{kind}` event; got {:?}", self.events.lock().unwrap());
    }
}

/// The policy set of the tests, for a tool API on `port`.
pub fn policy_files(port: u16) -> Vec<(&'static str, String)> {
    let base = format!(
        r#"kind: base
name: test
label: gateway-test
defaults: {{ unknown: 3, missing_attribute: 3, action: 1 }}
tools:
  - name: erp
    http: {{ host: {HOST}, port: {port} }}
    credential: {{ secret: erp-token }}
    actions:
      - name: list_invoices
        method: GET
        path: /v1/invoices
      - name: pay
        method: POST
        path: /v1/payments
        attributes:
          amount: {{ body: /amount }}
      - name: update_vendor
        method: PATCH
        path: /v1/vendors/{{id}}
        tier: 2
        compensation: {{ action: revert_vendor, window: 10m, carry: [vendor_version] }}
      - name: revert_vendor
        method: POST
        path: /v1/vendors/{{id}}/revert
      - name: delete_vendors
        method: DELETE
        path: /v1/vendors
      - name: wire
        method: POST
        path: /v1/wires
        attributes:
          amount: {{ header: x-amount }}
      - name: get_account
        method: GET
        path: /v1/accounts/{{id}}
      - name: account_secrets
        method: GET
        path: /v1/accounts/{{id}}/secrets
      - name: add_note
        method: POST
        path: /v1/customers/{{id}}/notes
      - name: delete_customer
        method: DELETE
        path: /v1/customers/{{id}}
      - name: admin
        method: GET
        path: /v1/admin/*
      - name: echo
        method: GET
        path: /v1/echo/{{kind}}
  - name: crm
    mcp: {{ server: crm, url: "https://{HOST}:{port}/mcp" }}
    credential: {{ secret: erp-token }}
    actions:
      - name: lookup
        mcp_tool: get_customer
      - name: delete
        mcp_tool: delete_customer
      - name: refund
        mcp_tool: refund
        attributes:
          amount: {{ body: /amount }}
  - name: crm-live
    mcp: {{ server: crm-live, url: "https://{HOST}:{port}{STREAM_PATH}", server_requests: [roots/list] }}
    credential: {{ secret: erp-token }}
    actions:
      - name: lookup
        mcp_tool: get_customer
      - name: delete
        mcp_tool: delete_customer
      - name: bulk_update
        mcp_tool: update_customers
        tier: 2
        compensation: {{ action: restore, window: 10m }}
      - name: restore
        mcp_tool: restore_customers
rules:
  - id: never-delete-customers
    when: {{ tool: crm, action: delete }}
    tier: deny
  - id: never-delete-live-customers
    when: {{ tool: crm-live, action: delete }}
    tier: deny
  - id: payments-over-1000-need-approval
    when: {{ tool: erp, action: pay, amount: {{ gt: 1000 }} }}
    tier: 3
  - id: wires-over-100-need-approval
    when: {{ tool: erp, action: wire, amount: {{ gt: 100 }} }}
    tier: 3
  - id: refunds-over-100-need-approval
    when: {{ tool: crm, action: refund, amount: {{ gt: 100 }} }}
    tier: 3
  - id: no-account-secrets
    when: {{ tool: erp, action: account_secrets }}
    tier: deny
  - id: no-customer-deletes
    when: {{ tool: erp, action: delete_customer }}
    tier: deny
  - id: no-admin
    when: {{ tool: erp, action: admin }}
    tier: deny
  - id: no-mass-delete
    when: {{ tool: erp, action: delete_vendors }}
    tier: 4
    quarantine: true
"#
    );
    let agent = "kind: agent\nid: buyer\nowner: jane@example.test\npurpose: pays invoices\n";
    vec![("base.yaml", base), ("buyer.yaml", agent.to_string())]
}

/// A gateway in front of a [`ToolApi`], reachable through an explicit proxy
/// and a transparent listener for the tool port.
pub struct Harness {
    pub upstream_ca: TestCa,
    pub api: ToolApi,
    pub gateway: Gateway,
    pub proxies: Proxies,
    pub bundle: AgentTrustBundle,
    pub approvals: ApprovalStore,
    /// The tier policy in force (its directory is `policy_dir`; reload it
    /// after editing).
    pub policy: Arc<PolicyStore>,
    pub policy_dir: PathBuf,
    /// The approvers' webhook (`approval.pending`, `approval.decided`).
    pub approver: Webhook,
    pub owner: Webhook,
    pub soc: Webhook,
    pub dir: TempDir,
    pub state: PathBuf,
}

pub struct Options {
    pub sla: Duration,
    /// Reuse this approvals directory (restart tests).
    pub state: Option<PathBuf>,
    pub max_body: usize,
    /// Most pending approvals of the agent.
    pub max_pending: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sla: Duration::from_secs(60),
            state: None,
            max_body: 64 * 1024,
            max_pending: agent_sidecar::approvals::DEFAULT_MAX_PENDING_PER_AGENT,
        }
    }
}

impl Harness {
    pub async fn start(opts: Options) -> Self {
        let upstream_ca = TestCa::new(&[HOST]);
        let api = ToolApi::start(&upstream_ca).await;
        Self::start_with(opts, upstream_ca, api).await
    }

    pub async fn start_with(opts: Options, upstream_ca: TestCa, api: ToolApi) -> Self {
        let dir = TempDir::new();
        let policy_dir = dir.0.join("policy");
        std::fs::create_dir_all(&policy_dir).unwrap();
        for (name, text) in policy_files(api.addr.port()) {
            std::fs::write(policy_dir.join(name), text).unwrap();
        }
        let store = Arc::new(
            PolicyStore::open(&policy_dir, StoreOptions::default(), None).expect("policy compiles"),
        );
        let identity = store.current().identity("buyer", "prod");
        let secret_file = dir.0.join("erp-token");
        std::fs::write(&secret_file, SECRET).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let spec: SecretSpec = format!("erp-token=file:{}", secret_file.display())
            .parse()
            .expect("secret spec");
        let secrets = SecretStore::load(&[spec]).expect("secrets");
        let anchors = TrustAnchors::load(
            &SystemRoots::Disabled,
            std::slice::from_ref(&upstream_ca.ca_file),
        )
        .expect("anchors");
        let ca = CertificateAuthority::generate(&CaOptions::default()).expect("CA");
        let names = store.clone();
        let tls = TlsTerminator::new(
            ca,
            anchors,
            Arc::new(move |n: &str| names.current().inspected(n).is_some()),
            TerminatorOptions::default(),
        )
        .expect("terminator");
        let bundle = tls
            .write_agent_bundle(&dir.0.join("trust"))
            .expect("bundle");
        let state = opts
            .state
            .clone()
            .unwrap_or_else(|| dir.0.join("approvals"));
        let owner = Webhook::start().await;
        let soc = Webhook::start().await;
        let approver = Webhook::start().await;
        let hook = |url: &str| {
            let mut c = WebhookConfig::new(url);
            c.initial_backoff = Duration::from_millis(50);
            Some(Arc::new(WebhookNotifier::spawn(c).expect("webhook")))
        };
        let (approvals, _) = ApprovalStore::open_with(
            &state,
            ApprovalStoreOptions {
                notifier: hook(&approver.url).map(|w| w as Arc<dyn Notifier>),
                config: StoreConfig {
                    max_pending_per_agent: opts.max_pending,
                    ..StoreConfig::default()
                },
                ..ApprovalStoreOptions::default()
            },
        )
        .await
        .expect("approvals");
        let resolver = Arc::new(MapResolve(HashMap::from([(
            HOST.to_string(),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )])));
        let mut config = GatewayConfig {
            approval_sla: opts.sla,
            ..GatewayConfig::default()
        };
        config.limits.max_body_bytes = opts.max_body;
        let gateway = Gateway::new(GatewayParts {
            identity,
            policy: store.clone(),
            tls: Arc::new(tls),
            resolver: resolver.clone(),
            secrets,
            approvals: approvals.clone(),
            quarantine: QuarantineSwitch::new(Arc::new(NoKernel)),
            sink: Some(Arc::new(EventBus::new(vec![Arc::new(Notices {
                owner: hook(&owner.url),
                soc: hook(&soc.url),
            })]))),
            config,
        })
        .expect("gateway");
        let ctx = ProxyContext::new(Arc::new(AllowList(vec![HOST.to_string()])), resolver)
            .with_inspector(Arc::new(gateway.clone()));
        let proxies = Proxies::start(&ctx, &[api.addr.port()]);
        Harness {
            upstream_ca,
            api,
            gateway,
            proxies,
            bundle,
            approvals,
            policy: store,
            policy_dir,
            approver,
            owner,
            soc,
            dir,
            state,
        }
    }

    /// The agent's URL for `path` on the tool host.
    pub fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.api.addr.port())
    }

    /// curl arguments that reach the tool host through the transparent
    /// listener (as the kernel's redirect would).
    pub fn transparent_args(&self) -> Vec<String> {
        let port = self.api.addr.port();
        let t = self.proxies.transparent[&port];
        vec![
            "--connect-to".into(),
            format!("{HOST}:{port}:{}:{}", t.ip(), t.port()),
            "--cacert".into(),
            self.bundle.bundle.display().to_string(),
        ]
    }

    /// curl arguments that go through the explicit proxy.
    pub fn explicit_args(&self) -> Vec<String> {
        vec![
            "--proxy".into(),
            format!("http://{}", self.proxies.explicit),
            "--cacert".into(),
            self.bundle.bundle.display().to_string(),
        ]
    }

    /// Serves the admin API with `token`; returns its base URL.
    pub async fn admin(&self, token: &str) -> String {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let admin = Admin::api(self.approvals.clone(), BearerToken::new(token).unwrap())
            .with_gateway(self.gateway.clone());
        tokio::spawn(agent_sidecar::admin::serve(listener, admin));
        url
    }
}
