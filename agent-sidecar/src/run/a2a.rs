//! Calls between agents under `run` and `serve`: the agent's fleet
//! identity for the gateway's calls to other agents, and the inbound
//! endpoint (`--a2a-listen`) where other agents' sidecars call this one
//! (see [`crate::gateway::inbound`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::info;

use super::error::RunError;
use crate::delegation::{config::IdentityConfig, identity::IdentityFiles, sessions::Sessions};
use crate::events::EventBus;
use crate::gateway::{
    A2aConfig,
    inbound::{Inbound, accepts_from_policy},
};
use crate::policy::PolicyStore;

/// Where other agents' sidecars reach this one and where their calls go.
#[derive(Clone, Debug)]
pub struct InboundOptions {
    /// Listen address of the mutual-TLS endpoint.
    pub listen: std::net::SocketAddr,
    /// The agent's own HTTP endpoint for delegated calls (`http://127.0.0.1:PORT`).
    pub forward: hyper::Uri,
}

fn err(what: impl std::fmt::Display) -> RunError {
    RunError::Gateway(what.to_string())
}

/// The gateway's configuration for calls between agents and, with
/// `inbound`, the endpoint's task.
pub(crate) async fn start(
    identity: Option<&IdentityConfig>,
    inbound: Option<&InboundOptions>,
    agent_id: &str,
    store: &Arc<PolicyStore>,
    events: &EventBus,
) -> Result<(Option<A2aConfig>, Option<JoinHandle<()>>), RunError> {
    let Some(id) = identity else {
        if inbound.is_some() {
            return Err(err(
                "--a2a-listen needs the agent's fleet identity: give --agent-identity-cert, --agent-identity-key and --fleet-ca-cert",
            ));
        }
        return Ok((None, None));
    };
    let files = Arc::new(
        IdentityFiles::open(id.cert.clone(), id.key.clone(), id.ca.clone())
            .map_err(|e| err(format!("--agent-identity-cert {}: {e}", id.cert.display())))?,
    );
    let spiffe = files.current().map_err(err)?.spiffe_id.clone();
    let sessions = Arc::new(Sessions::default());
    let sink: Arc<dyn crate::delegation::event::DelegationSink> = Arc::new(events.clone());
    let config = A2aConfig {
        identity: files.clone(),
        sessions: sessions.clone(),
        sink: Some(sink.clone()),
    };
    let Some(inb) = inbound else {
        info!(identity = %spiffe, "fleet identity loaded: calls to other agents carry it");
        return Ok((Some(config), None));
    };
    let listener = tokio::net::TcpListener::bind(inb.listen)
        .await
        .map_err(|e| err(format!("--a2a-listen {}: {e}", inb.listen)))?;
    let endpoint = Inbound {
        agent_id: agent_id.to_string(),
        identity: files,
        accepts: accepts_from_policy(store.clone(), agent_id.to_string()),
        sessions,
        forward: inb.forward.clone(),
        sink: Some(sink),
        timeout: Duration::from_secs(60),
    };
    info!(identity = %spiffe, listen = %inb.listen, forward = %inb.forward, "a2a endpoint: other agents' sidecars call this agent here");
    Ok((Some(config), Some(tokio::spawn(endpoint.serve(listener)))))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

    use super::*;
    use crate::delegation::{TOKEN_HEADER, fleet_ca, token};

    /// A loopback HTTP server answering every request with the headers it
    /// got (the agent's own endpoint).
    async fn echo_agent() -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                        let h: serde_json::Map<String, serde_json::Value> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
                            .collect();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(serde_json::Value::Object(h).to_string()),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        addr
    }

    async fn post(
        client: rustls::ClientConfig,
        addr: std::net::SocketAddr,
        token: &str,
    ) -> (u16, String) {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("b.research.fleet.test").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::post("/research")
            .header("host", "b.research.fleet.test")
            .header(TOKEN_HEADER, token)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn run_wires_the_endpoint_from_the_flags_and_the_policy_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        fleet_ca::init("fleet.test", &ca, Duration::from_secs(3600)).unwrap();
        let mut files = Vec::new();
        for (team, agent) in [("research", "b"), ("ops", "a"), ("ops", "c")] {
            let issued =
                fleet_ca::issue(&ca, team, agent, Duration::from_secs(600), Duration::ZERO)
                    .unwrap();
            files.push(fleet_ca::write_issued(&issued, &dir.path().join("ids"), agent).unwrap());
        }
        let policy = dir.path().join("policy");
        std::fs::create_dir_all(&policy).unwrap();
        std::fs::write(
            policy.join("base.yaml"),
            "kind: base\nname: acme\nlabel: t\n",
        )
        .unwrap();
        std::fs::write(
            policy.join("b.yaml"),
            "kind: agent\nid: b\nowner: o@x.test\npurpose: p\ndelegation:\n  accept_from: [spiffe://fleet.test/team/ops/agent/a]\n",
        )
        .unwrap();
        let store = Arc::new(PolicyStore::open(&policy, Default::default(), None).unwrap());
        let id = |i: usize| IdentityConfig {
            cert: files[i].0.clone(),
            key: files[i].1.clone(),
            ca: ca.join(fleet_ca::CA_CERT),
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let inbound = InboundOptions {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            forward: format!("http://{}", echo_agent().await).parse().unwrap(),
        };
        // The endpoint needs the identity.
        let events = EventBus::new(Vec::new());
        assert!(
            start(None, Some(&inbound), "b", &store, &events)
                .await
                .is_err()
        );
        let (config, task) = start(Some(&id(0)), Some(&inbound), "b", &store, &events)
            .await
            .unwrap();
        assert!(config.is_some() && task.is_some());
        let load = |i: usize| {
            crate::delegation::identity::AgentIdentity::load(&files[i].0, &files[i].1, &id(i).ca)
                .unwrap()
        };
        let (a, c) = (load(1), load(2));
        let mint = |who: &crate::delegation::identity::AgentIdentity| {
            let may = token::DelegationPolicy {
                may_delegate: [(
                    "spiffe://fleet.test/team/research/agent/b".to_string(),
                    ["erp".to_string()].into(),
                )]
                .into(),
            };
            token::mint(
                who,
                &may,
                "spiffe://fleet.test/team/research/agent/b",
                None,
                Duration::from_secs(60),
            )
            .unwrap()
            .token
        };
        let (status, body) = post(a.client_config().unwrap(), inbound.listen, &mint(&a)).await;
        assert_eq!(status, 200, "{body}");
        let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            seen["x-agent-delegator"],
            "spiffe://fleet.test/team/ops/agent/a"
        );
        assert!(seen.get(TOKEN_HEADER).is_none(), "{body}");
        assert!(seen["traceparent"].as_str().is_some(), "{body}");
        // An agent the policy in force does not accept.
        let (status, body) = post(c.client_config().unwrap(), inbound.listen, &mint(&c)).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("not_accepted"), "{body}");
        task.unwrap().abort();
    }
}
