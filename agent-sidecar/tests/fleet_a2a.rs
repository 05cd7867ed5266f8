//! Agent-to-agent delegation over real TLS sockets: an orchestrator A calls
//! a sub-agent B through B's sidecar endpoint (mTLS with fleet identities,
//! biscuit delegation token, traceparent), and every way around it fails.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_sidecar::delegation::answer::{AnswerError, AnswerSchemas};
use agent_sidecar::delegation::fleet_ca;
use agent_sidecar::delegation::identity::{AgentIdentity, IdentityFiles, peer_identity};
use agent_sidecar::delegation::token::{DelegationPolicy, Verifier, attenuate, mint};
use agent_sidecar::delegation::{DelegationError, Refusal, TOKEN_HEADER};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const TD: &str = "example.org";
const B_ID: &str = "spiffe://example.org/team/research/agent/b";
const C_ID: &str = "spiffe://example.org/team/research/agent/c";
const B_DNS: &str = "b.research.example.org";

fn ident(ca: &Path, out: &Path, team: &str, agent: &str) -> AgentIdentity {
    let issued =
        fleet_ca::issue(ca, team, agent, Duration::from_secs(3600), Duration::ZERO).unwrap();
    let (cert, key) = fleet_ca::write_issued(&issued, out, agent).unwrap();
    AgentIdentity::load(&cert, &key, &ca.join(fleet_ca::CA_CERT)).unwrap()
}

/// One audit record of B's sidecar: tool, trace id, outcome.
#[derive(Debug, Clone)]
struct Record {
    #[allow(dead_code)]
    tool: String,
    trace_id: Option<String>,
    outcome: Result<(), &'static str>,
}

type Records = Arc<Mutex<Vec<Record>>>;

fn trace_id(tp: Option<&str>) -> Option<String> {
    tp.and_then(|v| v.split('-').nth(1)).map(str::to_string)
}

/// B's sidecar endpoint: mTLS (fleet CA), token verification on the
/// intersection with B's own policy, B's tool answers behind it.
async fn start_b(b: &AgentIdentity, own: &[&str]) -> (std::net::SocketAddr, Records) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(b.server_config().unwrap()));
    let verifier = Arc::new(Verifier::new(b.spiffe_id.clone()));
    let own: Arc<BTreeSet<String>> = Arc::new(own.iter().map(|s| s.to_string()).collect());
    let records: Records = Arc::default();
    let recs = records.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, verifier, own, recs) = (
                acceptor.clone(),
                verifier.clone(),
                own.clone(),
                recs.clone(),
            );
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(_) => {
                        recs.lock().unwrap().push(Record {
                            tool: String::new(),
                            trace_id: None,
                            outcome: Err(Refusal::MissingIdentity.reason()),
                        });
                        return;
                    }
                };
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| peer_identity(c).ok());
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (verifier, own, recs, peer) =
                        (verifier.clone(), own.clone(), recs.clone(), peer.clone());
                    async move {
                        let tool = req.uri().path().trim_start_matches("/tools/").to_string();
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string)
                        };
                        let token = h(TOKEN_HEADER);
                        let trace = trace_id(h("traceparent").as_deref());
                        let res = verifier.verify(
                            token.as_deref(),
                            peer.as_ref().map(|(id, k)| (id.as_str(), *k)),
                            &tool,
                            own.contains(&tool),
                        );
                        recs.lock().unwrap().push(Record {
                            tool: tool.clone(),
                            trace_id: trace,
                            outcome: res.as_ref().map(|_| ()).map_err(|r| r.reason()),
                        });
                        let resp = match res {
                            Ok(_) => {
                                // B's tool: "report" answers off-schema (a compromised B).
                                let body = if tool == "report" {
                                    r#"{"summary": 42}"#
                                } else {
                                    r#"{"summary": "ok"}"#
                                };
                                Response::new(Full::new(Bytes::from(body)))
                            }
                            Err(r) => {
                                let mut resp = Response::new(Full::new(Bytes::from(r.reason())));
                                *resp.status_mut() = StatusCode::FORBIDDEN;
                                resp
                            }
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, records)
}

/// A's sidecar calling B: real TLS client, HTTP/1.1, token + traceparent.
async fn call(
    client: rustls::ClientConfig,
    addr: std::net::SocketAddr,
    tool: &str,
    token: Option<&str>,
    traceparent: &str,
) -> Result<(StatusCode, Vec<u8>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(B_DNS).unwrap();
    let tls = TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::post(format!("/tools/{tool}"))
        .header("host", B_DNS)
        .header("traceparent", traceparent);
    if let Some(t) = token {
        req = req.header(TOKEN_HEADER, t);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from_static(b"{}"))).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body.to_vec()))
}

struct Setup {
    _dir: tempfile::TempDir,
    a: AgentIdentity,
    c: AgentIdentity,
    policy: DelegationPolicy,
    addr: std::net::SocketAddr,
    records: Records,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    fleet_ca::init(TD, &ca, Duration::from_secs(86400)).unwrap();
    let a = ident(&ca, &dir.path().join("a"), "platform", "a");
    let b = ident(&ca, &dir.path().join("b"), "research", "b");
    let c = ident(&ca, &dir.path().join("c"), "research", "c");
    // B's own policy is broader than what A delegates.
    let (addr, records) = start_b(&b, &["search", "summarize", "report", "delete"]).await;
    let mut policy = DelegationPolicy::default();
    policy.may_delegate.insert(
        B_ID.to_string(),
        ["search", "summarize", "report"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    Setup {
        _dir: dir,
        a,
        c,
        policy,
        addr,
        records,
    }
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn last(r: &Records) -> Record {
    r.lock().unwrap().last().cloned().unwrap()
}

#[tokio::test]
async fn narrowed_delegation_allows_only_the_delegated_tool() {
    let s = setup().await;
    let narrow = vec!["summarize".to_string()];
    let t = mint(
        &s.a,
        &s.policy,
        B_ID,
        Some(&narrow),
        Duration::from_secs(60),
    )
    .unwrap();
    let (st, body) = call(
        s.a.client_config().unwrap(),
        s.addr,
        "summarize",
        Some(&t.token),
        TP,
    )
    .await
    .unwrap();
    assert_eq!(st, StatusCode::OK);
    // One trace id in both agents' records: A's (the traceparent it sent) and B's.
    let rec = last(&s.records);
    assert_eq!(rec.outcome, Ok(()));
    assert_eq!(rec.trace_id.as_deref(), trace_id(Some(TP)).as_deref());
    let mut schemas = AnswerSchemas::default();
    schemas
        .insert("summarize", &serde_json::json!({"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}))
        .unwrap();
    schemas.validate("summarize", &body).unwrap();

    // B's own policy allows search and delete; the delegation does not.
    for tool in ["search", "delete"] {
        let t = mint(
            &s.a,
            &s.policy,
            B_ID,
            Some(&narrow),
            Duration::from_secs(60),
        )
        .unwrap();
        let (st, body) = call(
            s.a.client_config().unwrap(),
            s.addr,
            tool,
            Some(&t.token),
            TP,
        )
        .await
        .unwrap();
        assert_eq!(st, StatusCode::FORBIDDEN, "{tool}");
        assert_eq!(body, b"not_delegated");
    }
    // A's policy never delegates delete: asking to is refused at minting.
    let wide = vec!["summarize".to_string(), "delete".to_string()];
    assert!(matches!(
        mint(&s.a, &s.policy, B_ID, Some(&wide), Duration::from_secs(60)),
        Err(DelegationError::Widen { .. })
    ));
    // Offline attenuation narrows a full delegation.
    let full = mint(&s.a, &s.policy, B_ID, None, Duration::from_secs(60)).unwrap();
    let narrowed = attenuate(&full.token, s.a.keypair().public(), &narrow).unwrap();
    let (st, _) = call(
        s.a.client_config().unwrap(),
        s.addr,
        "search",
        Some(&narrowed),
        TP,
    )
    .await
    .unwrap();
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn forged_replayed_expired_misaddressed_and_widened_tokens_are_refused() {
    let s = setup().await;
    let narrow = vec!["summarize".to_string()];
    let refused = |st: StatusCode, body: Vec<u8>, reason: &str| {
        assert_eq!(st, StatusCode::FORBIDDEN, "{reason}");
        assert_eq!(String::from_utf8(body).unwrap(), reason);
    };
    // Forged: a token signed by another fleet agent's key, sent over A's identity.
    let forged = mint(
        &s.c,
        &s.policy,
        B_ID,
        Some(&narrow),
        Duration::from_secs(60),
    )
    .unwrap();
    let (st, b) = call(
        s.a.client_config().unwrap(),
        s.addr,
        "summarize",
        Some(&forged.token),
        TP,
    )
    .await
    .unwrap();
    refused(st, b, "signature");
    // Forged: a token signed by a key outside the fleet.
    let rogue = biscuit_auth::KeyPair::new();
    let rogue_tok = biscuit_auth::Biscuit::builder()
        .code(format!(
            r#"delegator("spiffe://example.org/team/platform/agent/a"); audience("{B_ID}"); token_id("x"); expires(9999999999); tool("summarize");"#
        ))
        .unwrap()
        .build(&rogue)
        .unwrap()
        .to_base64()
        .unwrap();
    let (st, b) = call(
        s.a.client_config().unwrap(),
        s.addr,
        "summarize",
        Some(&rogue_tok),
        TP,
    )
    .await
    .unwrap();
    refused(st, b, "signature");
    // Replayed: the same token twice (changed bytes of the request do not help).
    let t = mint(
        &s.a,
        &s.policy,
        B_ID,
        Some(&narrow),
        Duration::from_secs(60),
    )
    .unwrap();
    let (st, _) = call(
        s.a.client_config().unwrap(),
        s.addr,
        "summarize",
        Some(&t.token),
        TP,
    )
    .await
    .unwrap();
    assert_eq!(st, StatusCode::OK);
    let (st, b) = call(
        s.a.client_config().unwrap(),
        s.addr,
        "summarize",
        Some(&t.token),
        TP,
    )
    .await
    .unwrap();
    refused(st, b, "replay");
    // Expired.
    let t = mint(&s.a, &s.policy, B_ID, Some(&narrow), Duration::from_secs(1)).unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (st, b) = call(
        s.a.client_config().unwrap(),
        s.addr,
        "summarize",
        Some(&t.token),
        TP,
    )
    .await
    .unwrap();
    refused(st, b, "expired");
    // Another audience (C), presented to B.
    let mut p = s.policy.clone();
    p.may_delegate
        .insert(C_ID.to_string(), narrow.iter().cloned().collect());
    let t = mint(&s.a, &p, C_ID, Some(&narrow), Duration::from_secs(60)).unwrap();
    let (st, b) = call(
        s.a.client_config().unwrap(),
        s.addr,
        "summarize",
        Some(&t.token),
        TP,
    )
    .await
    .unwrap();
    refused(st, b, "audience");
    // Widened attenuation: a block adding tool("delete") is not trusted.
    for tool in ["delete", "search"] {
        let t = mint(
            &s.a,
            &s.policy,
            B_ID,
            Some(&narrow),
            Duration::from_secs(60),
        )
        .unwrap();
        let widened = biscuit_auth::Biscuit::from_base64(&t.token, s.a.keypair().public())
            .unwrap()
            .append(
                biscuit_auth::BlockBuilder::new()
                    .code(r#"tool("delete"); tool("search");"#)
                    .unwrap(),
            )
            .unwrap()
            .to_base64()
            .unwrap();
        let t2 = attenuate(&widened, s.a.keypair().public(), &[tool.to_string()]).unwrap();
        let (st, b) = call(s.a.client_config().unwrap(), s.addr, tool, Some(&t2), TP)
            .await
            .unwrap();
        refused(st, b, "not_delegated");
    }
    // Tampered bytes of a valid token.
    let t = mint(
        &s.a,
        &s.policy,
        B_ID,
        Some(&narrow),
        Duration::from_secs(60),
    )
    .unwrap();
    let mut bytes = t.token.into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let (st, b) = call(
        s.a.client_config().unwrap(),
        s.addr,
        "summarize",
        Some(std::str::from_utf8(&bytes).unwrap()),
        TP,
    )
    .await
    .unwrap();
    refused(st, b, "signature");
    // No token.
    let (st, b) = call(s.a.client_config().unwrap(), s.addr, "summarize", None, TP)
        .await
        .unwrap();
    refused(st, b, "missing_token");
}

#[tokio::test]
async fn calls_without_a_fleet_identity_are_refused() {
    let s = setup().await;
    let t = mint(&s.a, &s.policy, B_ID, None, Duration::from_secs(60)).unwrap();
    // No client certificate: trusts B, presents nothing.
    let roots = agent_sidecar::delegation::identity::fleet_roots(
        &std::fs::read_to_string(s._dir.path().join("ca").join(fleet_ca::CA_CERT)).unwrap(),
    )
    .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let anon = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    assert!(
        call(anon, s.addr, "summarize", Some(&t.token), TP)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(last(&s.records).outcome, Err("missing_identity"));
    // A certificate from another CA, carrying A's SPIFFE ID.
    let other_dir = tempfile::tempdir().unwrap();
    fleet_ca::init(TD, other_dir.path(), Duration::from_secs(86400)).unwrap();
    let issued = fleet_ca::issue(
        other_dir.path(),
        "platform",
        "a",
        Duration::from_secs(3600),
        Duration::ZERO,
    )
    .unwrap();
    let chain: Vec<_> =
        rustls::pki_types::pem::PemObject::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<Vec<rustls::pki_types::CertificateDer<'static>>, _>>()
            .unwrap();
    let key: rustls::pki_types::PrivateKeyDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let impostor = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    assert!(
        call(impostor, s.addr, "summarize", Some(&t.token), TP)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(last(&s.records).outcome, Err("missing_identity"));
    assert!(s.records.lock().unwrap().iter().all(|r| r.outcome.is_err()));
}

#[tokio::test]
async fn answers_violating_the_declared_schema_never_reach_the_caller() {
    let s = setup().await;
    let t = mint(
        &s.a,
        &s.policy,
        B_ID,
        Some(&["report".to_string()]),
        Duration::from_secs(60),
    )
    .unwrap();
    let (st, body) = call(
        s.a.client_config().unwrap(),
        s.addr,
        "report",
        Some(&t.token),
        TP,
    )
    .await
    .unwrap();
    assert_eq!(st, StatusCode::OK);
    let mut schemas = AnswerSchemas::default();
    schemas
        .insert(
            "report",
            &serde_json::json!({"type": "object", "properties": {"summary": {"type": "string"}}}),
        )
        .unwrap();
    assert!(matches!(
        schemas.validate("report", &body),
        Err(AnswerError::Violation { .. })
    ));
    // No schema declared: refused, not passed through.
    assert!(matches!(
        schemas.validate("other", b"{}"),
        Err(AnswerError::NoSchema(_))
    ));
    assert!(matches!(
        schemas.validate("report", b"not json"),
        Err(AnswerError::NotJson { .. })
    ));
}

#[test]
fn identities_expire_rotate_and_keep_their_key_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    fleet_ca::init(TD, &ca, Duration::from_secs(86400)).unwrap();
    assert_eq!(
        std::fs::metadata(ca.join(fleet_ca::CA_KEY))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // Expired identity refused.
    let old = fleet_ca::issue(
        &ca,
        "platform",
        "a",
        Duration::from_secs(3600),
        Duration::from_secs(7200),
    )
    .unwrap();
    let (cert, key) = fleet_ca::write_issued(&old, &dir.path().join("old"), "a").unwrap();
    assert!(matches!(
        AgentIdentity::load(&cert, &key, &ca.join(fleet_ca::CA_CERT)),
        Err(DelegationError::ExpiredIdentity { .. })
    ));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Rotation: the files change, the identity follows.
    let out = dir.path().join("a");
    let first = fleet_ca::issue(
        &ca,
        "platform",
        "a",
        Duration::from_secs(600),
        Duration::ZERO,
    )
    .unwrap();
    let (cert, key) = fleet_ca::write_issued(&first, &out, "a").unwrap();
    let files = IdentityFiles::open(cert.clone(), key.clone(), ca.join(fleet_ca::CA_CERT)).unwrap();
    let before = files.current().unwrap();
    assert_eq!(
        before.spiffe_id,
        "spiffe://example.org/team/platform/agent/a"
    );
    std::thread::sleep(Duration::from_millis(20));
    let second = fleet_ca::issue(
        &ca,
        "platform",
        "a",
        Duration::from_secs(7200),
        Duration::ZERO,
    )
    .unwrap();
    fleet_ca::write_issued(&second, &out, "a").unwrap();
    let after = files.current().unwrap();
    assert!(after.not_after > before.not_after);
    assert_ne!(
        after.keypair().public().to_bytes(),
        before.keypair().public().to_bytes()
    );
}
