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
use crate::gateway::{A2aConfig, inbound::Inbound};
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
    let (policy, agent) = (store.clone(), agent_id.to_string());
    let endpoint = Inbound {
        agent_id: agent_id.to_string(),
        identity: files,
        accepts: Arc::new(move |peer: &str| {
            policy
                .current()
                .delegation(&agent)
                .is_some_and(|d| d.accepts(peer))
        }),
        sessions,
        forward: inb.forward.clone(),
        sink: Some(sink),
        timeout: Duration::from_secs(60),
    };
    info!(identity = %spiffe, listen = %inb.listen, forward = %inb.forward, "a2a endpoint: other agents' sidecars call this agent here");
    Ok((Some(config), Some(tokio::spawn(endpoint.serve(listener)))))
}
