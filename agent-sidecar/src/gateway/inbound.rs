//! The callee's sidecar endpoint for calls from other agents
//! (`--a2a-listen`): mutual TLS with fleet identities, the delegation
//! token admitted (signature, delegator = TLS peer, audience, expiry,
//! single use, `accept_from`), the task opened under its trace id in
//! [`Sessions`], and the call forwarded to the agent (`--a2a-forward`) with
//! the trace continued. Every admission and refusal is an event; refusals
//! answer `403` with the reason and never reach the agent.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::delegation::event::{DelegationEvent, DelegationSink, DelegationStep};
use crate::delegation::identity::{IdentityFiles, peer_identity};
use crate::delegation::sessions::Sessions;
use crate::delegation::token::Verifier;
use crate::delegation::{Refusal, TOKEN_HEADER};

/// Header naming the delegating agent on the call the agent receives.
pub const DELEGATOR_HEADER: &str = "x-agent-delegator";
/// Most bytes of a delegated request body the endpoint reads.
pub const MAX_BODY: usize = 1 << 20;

/// `Inbound::accepts` as `run` sets it: the `delegation.accept_from` of
/// agent `agent` in the policy set in force at each call.
pub fn accepts_from_policy(
    store: Arc<crate::policy::PolicyStore>,
    agent: String,
) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
    Arc::new(move |peer: &str| {
        store
            .current()
            .delegation(&agent)
            .is_some_and(|d| d.accepts(peer))
    })
}

/// The endpoint's settings.
pub struct Inbound {
    /// This agent's id (events).
    pub agent_id: String,
    /// The agent's fleet identity (server certificate, client CA).
    pub identity: Arc<IdentityFiles>,
    /// Whether the current policy accepts delegations of a SPIFFE ID.
    pub accepts: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// The tasks in force (shared with the gateway).
    pub sessions: Arc<Sessions>,
    /// Where the agent serves delegated calls, `http://127.0.0.1:PORT`.
    pub forward: Uri,
    /// Where events go.
    pub sink: Option<Arc<dyn DelegationSink>>,
    /// How long the agent may take to answer.
    pub timeout: Duration,
}

type Body = super::AgentBody;

/// The gateway's refusal answer (`{"error": {"reason", "message"}}`).
fn refusal(status: StatusCode, reason: &'static str, message: &str) -> Response<Body> {
    super::refusal::Refusal::new(status, reason, message).response()
}

impl Inbound {
    /// Serves `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        let this = Arc::new(Endpoint {
            cfg: self,
            verifier: std::sync::Mutex::new(None),
            acceptor: std::sync::Mutex::new(None),
        });
        let client: Client<HttpConnector, Body> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        loop {
            let (tcp, addr) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "a2a endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (this, client) = (this.clone(), client.clone());
            tokio::spawn(async move { this.connection(tcp, addr, client).await });
        }
    }
}

/// The endpoint at work: its settings and its verifier (whose replay
/// memory spans every connection).
struct Endpoint {
    cfg: Inbound,
    verifier: std::sync::Mutex<Option<Arc<Verifier>>>,
    /// The TLS acceptor of the current identity, built again on rotation.
    acceptor:
        std::sync::Mutex<Option<(Arc<crate::delegation::identity::AgentIdentity>, TlsAcceptor)>>,
}

impl std::ops::Deref for Endpoint {
    type Target = Inbound;
    fn deref(&self) -> &Inbound {
        &self.cfg
    }
}

impl Endpoint {
    fn refused(
        &self,
        r: &Refusal,
        peer: Option<&str>,
        traceparent: Option<&str>,
        addr: SocketAddr,
    ) {
        tracing::warn!(reason = r.reason(), peer = ?peer, %addr, "call from another agent refused: {r}");
        if let Some(s) = &self.sink {
            let detail = r.to_string();
            s.delegation(&DelegationEvent {
                agent_id: &self.agent_id,
                step: DelegationStep::Refused,
                delegator: peer,
                audience: None,
                token_id: None,
                permissions: &[],
                reason: Some(r.reason()),
                detail: Some(&detail),
                traceparent,
                peer_addr: Some(addr),
            });
        }
    }

    async fn connection(
        self: Arc<Self>,
        tcp: tokio::net::TcpStream,
        addr: SocketAddr,
        client: Client<HttpConnector, Body>,
    ) {
        let acceptor = match self.acceptor() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "a2a endpoint: this agent's identity is unusable; refusing calls");
                return;
            }
        };
        let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
            Ok(Ok(t)) => t,
            _ => {
                self.refused(&Refusal::MissingIdentity, None, None, addr);
                return;
            }
        };
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(peer_identity);
        let peer = match peer.unwrap_or(Err(Refusal::MissingIdentity)) {
            Ok(p) => p,
            Err(r) => {
                self.refused(&r, None, None, addr);
                return;
            }
        };
        let svc = service_fn(move |req: Request<Incoming>| {
            let (this, client, peer) = (self.clone(), client.clone(), peer.clone());
            async move { Ok::<_, Infallible>(this.call(req, &peer, addr, &client).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), svc)
            .await;
    }

    async fn call(
        &self,
        req: Request<Incoming>,
        peer: &(String, biscuit_auth::PublicKey),
        addr: SocketAddr,
        client: &Client<HttpConnector, Body>,
    ) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let context = super::trace::propagate(&mut parts.headers);
        let traceparent = context.to_string();
        let token = parts
            .headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let refuse = |r: Refusal| {
            self.refused(&r, Some(&peer.0), Some(&traceparent), addr);
            refusal(StatusCode::FORBIDDEN, r.reason(), &r.to_string())
        };
        if !(self.accepts)(&peer.0) {
            return refuse(Refusal::NotAccepted(peer.0.clone()));
        }
        let self_id = match self.identity.current() {
            Ok(id) => id.spiffe_id.clone(),
            Err(e) => {
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "identity_unusable",
                    &e.to_string(),
                );
            }
        };
        let verifier = self.verifier(&self_id);
        let admitted = match verifier.admit(token.as_deref(), Some((&peer.0, peer.1))) {
            Ok(a) => a,
            Err(r) => return refuse(r),
        };
        self.sessions.open(&context.trace_id_hex(), &admitted);
        if let Some(s) = &self.sink {
            let perms: Vec<String> = admitted.permissions.iter().cloned().collect();
            s.delegation(&DelegationEvent {
                agent_id: &self.agent_id,
                step: DelegationStep::Admitted,
                delegator: Some(&peer.0),
                audience: Some(&self_id),
                token_id: Some(&admitted.verified.id),
                permissions: &perms,
                reason: None,
                detail: None,
                traceparent: Some(&traceparent),
                peer_addr: Some(addr),
            });
        }
        // Forward to the agent: same method, path and body; the token
        // stays here, the delegator is named.
        parts.headers.remove(TOKEN_HEADER);
        parts.headers.remove(header::HOST);
        super::forward::strip_hop_by_hop(&mut parts.headers);
        if let Ok(v) = HeaderValue::from_str(&peer.0) {
            parts
                .headers
                .insert(HeaderName::from_static(DELEGATOR_HEADER), v);
        }
        let mut uri = self.forward.clone().into_parts();
        uri.path_and_query = parts.uri.path_and_query().cloned();
        parts.uri = match Uri::from_parts(uri) {
            Ok(u) => u,
            Err(e) => return refusal(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
        };
        parts.version = hyper::Version::HTTP_11;
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    &e.to_string(),
                );
            }
        };
        let req = Request::from_parts(parts, Full::new(body).map_err(|n| match n {}).boxed());
        match tokio::time::timeout(self.timeout, client.request(req)).await {
            Ok(Ok(resp)) => resp.map(|b| b.boxed()),
            Ok(Err(e)) => refusal(StatusCode::BAD_GATEWAY, "agent_unreachable", &e.to_string()),
            Err(_) => refusal(
                StatusCode::GATEWAY_TIMEOUT,
                "agent_timeout",
                &format!("the agent did not answer within {:?}", self.timeout),
            ),
        }
    }

    /// The TLS acceptor of the current identity (built once per identity).
    fn acceptor(&self) -> Result<TlsAcceptor, crate::delegation::DelegationError> {
        let id = self.identity.current()?;
        let mut cached = self.acceptor.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((for_id, a)) = &*cached
            && Arc::ptr_eq(for_id, &id)
        {
            return Ok(a.clone());
        }
        let a = TlsAcceptor::from(Arc::new(id.server_config()?));
        *cached = Some((id, a.clone()));
        Ok(a)
    }

    /// The verifier for this agent's current SPIFFE ID (a rotated identity
    /// keeps its ID, and so its replay memory).
    fn verifier(&self, self_id: &str) -> Arc<Verifier> {
        let mut v = self.verifier.lock().unwrap_or_else(|e| e.into_inner());
        match &*v {
            Some(found) if found.audience() == self_id => found.clone(),
            _ => {
                let new = Arc::new(Verifier::new(self_id));
                *v = Some(new.clone());
                new
            }
        }
    }
}
