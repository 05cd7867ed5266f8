//! Calls between agents at the gateway. Caller side: a call of a tool that
//! the agent's `delegation.delegates` names is sent to the callee's
//! sidecar over mutual TLS with this agent's fleet identity, carrying a
//! delegation token minted for this call (narrowed by the agent's
//! `x-agent-delegate-tools`, never widened), and the callee's answer must
//! satisfy the declared schema before the agent sees it. Callee side:
//! every call that carries the trace of a delegated task is narrowed to
//! what the task's token delegates, and with `only_delegated` a call
//! outside any task is refused (see [`crate::delegation`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::{HeaderMap, StatusCode, header::HeaderValue};

use super::refusal::Refusal;
use super::upstream::{UpstreamClient, upstream_client};
use crate::delegation::{
    self, NARROW_HEADER, TOKEN_HEADER,
    answer::AnswerSchemas,
    event::{DelegationEvent, DelegationSink, DelegationStep},
    identity::{AgentIdentity, IdentityFiles},
    sessions::Sessions,
    token::{self, DelegationPolicy, Minted},
};
use crate::policy::{Action, CompiledPolicySet};
use crate::proxy::Resolve;

/// Longest a minted token lives: one call's time, not a standing grant.
pub const TOKEN_TTL: Duration = Duration::from_secs(120);

/// The gateway's part of agent-to-agent calls (`GatewayConfig::a2a`).
#[derive(Clone)]
pub struct A2aConfig {
    /// This agent's fleet identity, reloaded on rotation.
    pub identity: Arc<IdentityFiles>,
    /// The delegated tasks in force (opened by the inbound endpoint).
    pub sessions: Arc<Sessions>,
    /// Where hop events go.
    pub sink: Option<Arc<dyn DelegationSink>>,
}

impl std::fmt::Debug for A2aConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("A2aConfig")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The gateway's handle: the configuration and the mTLS client of the
/// current identity.
pub(crate) struct A2a {
    cfg: Option<A2aConfig>,
    resolver: Arc<dyn Resolve>,
    connect_timeout: Duration,
    client: Mutex<Option<(Arc<AgentIdentity>, UpstreamClient)>>,
    /// Used when the sidecar has no identity: no task is ever in force.
    no_sessions: Sessions,
}

/// A call to another agent, ready to send.
pub(crate) struct Outbound<'p> {
    /// The mTLS client presenting this agent's identity.
    pub(crate) client: UpstreamClient,
    /// The token sent.
    pub(crate) minted: Minted,
    /// The callee.
    pub(crate) audience: &'p str,
    /// The answer schemas, by action.
    pub(crate) answers: &'p AnswerSchemas,
}

fn refusal(r: &delegation::Refusal) -> Refusal {
    Refusal::new(StatusCode::FORBIDDEN, r.reason(), r.to_string())
}

impl A2a {
    pub(crate) fn new(
        cfg: Option<A2aConfig>,
        resolver: Arc<dyn Resolve>,
        connect_timeout: Duration,
    ) -> Self {
        A2a {
            cfg,
            resolver,
            connect_timeout,
            client: Mutex::new(None),
            no_sessions: Sessions::default(),
        }
    }

    fn sessions(&self) -> &Sessions {
        self.cfg.as_ref().map_or(&self.no_sessions, |c| &c.sessions)
    }

    /// Callee side: refuses a call outside the delegated task its trace
    /// names (or outside any task when the agent acts only under
    /// delegation).
    pub(crate) fn narrow(
        &self,
        policy: &CompiledPolicySet,
        action: &Action,
        traceparent: &str,
    ) -> Result<(), Refusal> {
        let only = policy
            .delegation(&action.agent.id)
            .is_some_and(|d| d.section.only_delegated);
        if !only && self.cfg.is_none() {
            return Ok(());
        }
        self.sessions()
            .check(
                Some(traceparent),
                action.tool.as_deref(),
                action.action.as_deref(),
                only,
            )
            .map(|_| ())
            .map_err(|r| refusal(&r))
    }

    /// Caller side: when `action`'s tool is another agent, mints the token
    /// into `headers` and returns the client to send with. Strips the
    /// agent's narrowing header from every call.
    pub(crate) fn outbound<'p>(
        &self,
        policy: &'p CompiledPolicySet,
        action: &Action,
        headers: &mut HeaderMap,
        traceparent: &str,
    ) -> Result<Option<Outbound<'p>>, Refusal> {
        let narrow = headers
            .remove(NARROW_HEADER)
            .map(|v| {
                v.to_str()
                    .map(|s| {
                        s.split(',')
                            .map(|t| t.trim().to_string())
                            .filter(|t| !t.is_empty())
                            .collect::<Vec<_>>()
                    })
                    .map_err(|_| {
                        Refusal::new(
                            StatusCode::BAD_REQUEST,
                            "bad_request",
                            format!("{NARROW_HEADER} must be a comma-separated list of tool names"),
                        )
                    })
            })
            .transpose()?;
        // An agent never chooses its own token.
        headers.remove(TOKEN_HEADER);
        let Some((decl, answers)) = action.tool.as_deref().and_then(|t| {
            policy
                .delegation(&action.agent.id)
                .and_then(|d| d.delegate_for(t))
        }) else {
            return Ok(None);
        };
        let Some(cfg) = &self.cfg else {
            return Err(Refusal::new(
                StatusCode::BAD_GATEWAY,
                "no_fleet_identity",
                format!(
                    "tool {} is agent {}: this sidecar has no fleet identity to call it with; start it with --agent-identity-cert, --agent-identity-key and --fleet-ca-cert",
                    decl.tool, decl.to
                ),
            ));
        };
        let identity = cfg.identity.current().map_err(|e| {
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                "fleet_identity_unusable",
                e.to_string(),
            )
        })?;
        let may = DelegationPolicy {
            may_delegate: [(decl.to.clone(), decl.permissions.iter().cloned().collect())].into(),
        };
        let minted =
            token::mint(&identity, &may, &decl.to, narrow.as_deref(), TOKEN_TTL).map_err(|e| {
                Refusal::new(StatusCode::FORBIDDEN, "delegation_widened", e.to_string())
            })?;
        let value = HeaderValue::from_str(&minted.token)
            .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "token", e.to_string()))?;
        headers.insert(TOKEN_HEADER, value);
        if let Some(sink) = &cfg.sink {
            let perms: Vec<String> = minted.tools.iter().cloned().collect();
            sink.delegation(&DelegationEvent {
                agent_id: &action.agent.id,
                step: DelegationStep::Minted,
                delegator: Some(&identity.spiffe_id),
                audience: Some(&decl.to),
                token_id: Some(&minted.id),
                permissions: &perms,
                reason: None,
                detail: None,
                traceparent: Some(traceparent),
                peer_addr: None,
            });
        }
        let client = self.client(&identity)?;
        Ok(Some(Outbound {
            client,
            minted,
            audience: &decl.to,
            answers,
        }))
    }

    /// Caller side: checks the callee's answer against the schema of
    /// `action` before the agent sees it. An error answer (not 2xx) is
    /// passed on only as its status and reason code, never its free text:
    /// nothing the callee writes reaches the agent unchecked.
    pub(crate) fn check_answer(
        &self,
        out: &Outbound<'_>,
        action: &Action,
        status: StatusCode,
        body: &[u8],
        traceparent: &str,
    ) -> Result<(), Refusal> {
        let name = action.action.as_deref().unwrap_or_default();
        let checked = if status.is_success() {
            out.answers.validate(name, body).map_err(|e| e.to_string())
        } else {
            let code = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.pointer("/error/reason")?.as_str().map(str::to_string))
                .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                .unwrap_or_else(|| "unspecified".into());
            return Err(Refusal::new(
                StatusCode::BAD_GATEWAY,
                "callee_refused",
                format!(
                    "agent {} answered {} ({code}); its sidecar's audit trail holds the reason",
                    out.audience,
                    status.as_u16()
                ),
            ));
        };
        let Err(e) = checked else {
            return Ok(());
        };
        if let Some(sink) = self.cfg.as_ref().and_then(|c| c.sink.as_ref()) {
            let detail = e.to_string();
            sink.delegation(&DelegationEvent {
                agent_id: &action.agent.id,
                step: DelegationStep::AnswerRefused,
                delegator: None,
                audience: Some(out.audience),
                token_id: Some(&out.minted.id),
                permissions: &[],
                reason: Some("answer_schema"),
                detail: Some(&detail),
                traceparent: Some(traceparent),
                peer_addr: None,
            });
        }
        Err(Refusal::new(
            StatusCode::BAD_GATEWAY,
            "answer_invalid",
            format!("the answer of agent {} was withheld: {e}", out.audience),
        ))
    }

    fn client(&self, identity: &Arc<AgentIdentity>) -> Result<UpstreamClient, Refusal> {
        let mut cached = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, client)) = &*cached
            && Arc::ptr_eq(id, identity)
        {
            return Ok(client.clone());
        }
        let tls = identity.client_config().map_err(|e| {
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                "fleet_identity_unusable",
                e.to_string(),
            )
        })?;
        let client = upstream_client(tls, self.resolver.clone(), self.connect_timeout);
        *cached = Some((identity.clone(), client.clone()));
        Ok(client)
    }
}
