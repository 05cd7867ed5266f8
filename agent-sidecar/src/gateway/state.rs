//! [`Gateway`]: everything the request path shares.

use std::{sync::Arc, time::Duration};

use super::{
    compensate::Compensations,
    events::GatewaySink,
    hooks::{Alerts, QuarantineSwitch},
    limits::GatewayLimits,
    mcp_peer::McpSessions,
    upstream::{UpstreamClient, upstream_client},
};
use crate::{
    approvals::ApprovalStore,
    credentials::SecretStore,
    policy::{AgentIdentity, PolicyStore},
    proxy::Resolve,
    tls::TlsTerminator,
};

/// Default time approvers have before a held call is denied.
pub const DEFAULT_APPROVAL_SLA: Duration = Duration::from_secs(15 * 60);

/// How the gateway behaves.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Request bounds and timeouts.
    pub limits: GatewayLimits,
    /// How long a tier-3 call waits for an approver (then it is denied).
    pub approval_sla: Duration,
    /// Most approvals the agent may have pending at once (give it to the
    /// approval store's [`StoreConfig`](crate::approvals::StoreConfig)).
    pub max_pending_approvals: usize,
    /// Upstream TCP connect limit.
    pub connect_timeout: Duration,
    /// How long an upstream may take to answer: its response head, and
    /// the part of an MCP answer the gateway reads (up to the responses it
    /// awaits).
    pub upstream_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            limits: GatewayLimits::default(),
            approval_sla: DEFAULT_APPROVAL_SLA,
            max_pending_approvals: crate::approvals::DEFAULT_MAX_PENDING_PER_AGENT,
            connect_timeout: Duration::from_secs(10),
            upstream_timeout: Duration::from_secs(60),
        }
    }
}

/// The tool gateway of one agent. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) identity: AgentIdentity,
    pub(crate) policy: Arc<PolicyStore>,
    pub(crate) tls: Arc<TlsTerminator>,
    pub(crate) client: UpstreamClient,
    pub(crate) secrets: SecretStore,
    pub(crate) approvals: ApprovalStore,
    pub(crate) alerts: Alerts,
    pub(crate) quarantine: QuarantineSwitch,
    pub(crate) compensations: Compensations,
    pub(crate) mcp_sessions: McpSessions,
    pub(crate) sink: Option<Arc<dyn GatewaySink>>,
    pub(crate) config: GatewayConfig,
}

impl Shared {
    /// See [`Gateway::quarantine`].
    pub(crate) async fn quarantine_agent(&self, reason: &str) {
        tracing::warn!(agent = %self.identity.id, reason, "quarantining the agent");
        self.quarantine.engage(reason);
        let why = format!("the agent was quarantined: {reason}");
        match self.approvals.cancel_agent(&self.identity.id, why).await {
            Ok(cancelled) if !cancelled.is_empty() => {
                let ids: Vec<String> = cancelled.iter().map(|a| a.id.to_string()).collect();
                tracing::warn!(agent = %self.identity.id, approvals = ?ids, "held calls cancelled by the quarantine");
            }
            Ok(_) => {}
            // The forward of each approved call re-checks the quarantine.
            Err(e) => {
                tracing::error!(error = %e, "cannot cancel the held calls of the quarantined agent; each is refused at its forward")
            }
        }
    }
}

/// Everything a [`Gateway`] is built from.
pub struct GatewayParts {
    /// The agent, with owner, team and purpose (see
    /// [`CompiledPolicySet::identity`](crate::policy::CompiledPolicySet::identity)).
    pub identity: AgentIdentity,
    /// The tier policy, hot-reloaded.
    pub policy: Arc<PolicyStore>,
    /// Terminates the agent's TLS and verifies upstreams.
    pub tls: Arc<TlsTerminator>,
    /// The sidecar's resolver: the only source of upstream addresses.
    pub resolver: Arc<dyn Resolve>,
    /// Credentials by name.
    pub secrets: SecretStore,
    /// Durable tier-3 approvals.
    pub approvals: ApprovalStore,
    /// Owner and SOC webhooks.
    pub alerts: Alerts,
    /// Kernel quarantine.
    pub quarantine: QuarantineSwitch,
    /// Where events go besides the log.
    pub sink: Option<Arc<dyn GatewaySink>>,
    /// Behaviour.
    pub config: GatewayConfig,
}

/// Why a gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The agent has no registered owner.
    #[error(
        "agent `{0}` has no registered owner in the policy set: every governed agent needs an \
         accountable owner; add a `kind: agent` document with `id: {0}` and `owner: ...`"
    )]
    NoOwner(String),
    /// A tool needs a secret the sidecar was not given.
    #[error(
        "the policy needs secret `{0}` but it was not given; pass --secret {0}=file:PATH (a file \
         of mode 0600) or --secret {0}=env:VARIABLE"
    )]
    MissingSecret(String),
}

impl Gateway {
    /// Builds the gateway. Refuses an agent without an owner and a policy
    /// whose credentials are not all present.
    pub fn new(parts: GatewayParts) -> Result<Self, GatewayError> {
        if parts.identity.owner.as_deref().is_none_or(str::is_empty) {
            return Err(GatewayError::NoOwner(parts.identity.id.clone()));
        }
        let policy = parts.policy.current();
        if let Some(missing) = policy
            .secret_names()
            .into_iter()
            .find(|n| parts.secrets.get(n).is_none())
        {
            return Err(GatewayError::MissingSecret(missing.to_string()));
        }
        let client = upstream_client(
            parts.tls.upstream_client_config(),
            parts.resolver,
            parts.config.connect_timeout,
        );
        let gateway = Gateway {
            shared: Arc::new(Shared {
                identity: parts.identity,
                policy: parts.policy,
                tls: parts.tls,
                client,
                secrets: parts.secrets,
                approvals: parts.approvals,
                alerts: parts.alerts,
                quarantine: parts.quarantine,
                compensations: Compensations::default(),
                mcp_sessions: McpSessions::default(),
                sink: parts.sink,
                config: parts.config,
            }),
        };
        super::redecide::spawn(&gateway.shared);
        Ok(gateway)
    }

    /// Quarantines the agent now (every later call refused; the kernel
    /// quarantine follows the refusal that caused it) and cancels every
    /// approval of the agent that is pending or approved but not yet
    /// forwarded, telling the approvers. Also the entry point of a kill
    /// switch.
    pub async fn quarantine(&self, reason: &str) {
        self.shared.quarantine_agent(reason).await;
    }

    /// SHA-256 fingerprint of the sidecar CA the agent trusts.
    pub fn ca_fingerprint(&self) -> String {
        self.shared.tls.ca().fingerprint().to_string()
    }
}
