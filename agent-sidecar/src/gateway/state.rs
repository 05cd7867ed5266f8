//! [`Gateway`]: what the request path shares, as the narrow handles its
//! stages take ([`Upstream`] for the forward, [`Oversight`] for the tiers,
//! [`Recorder`] for the record...).

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use super::{
    compensate::Compensations,
    forward::Upstream,
    hooks::QuarantineSwitch,
    input::Inputs,
    journal::{AttemptJournal, Journal},
    limits::GatewayLimits,
    mcp_sessions::McpSessions,
    record::{GatewaySink, Recorder},
    tiers::Oversight,
    upstream::upstream_client,
};
use crate::{
    approvals::ApprovalStore,
    credentials::{RedactorCache, SecretStore},
    policy::{AgentIdentity, PolicyStore},
    proxy::Resolve,
    redaction::RedactionKey,
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
    /// The quotas every decided call is counted against (none: no quotas).
    pub quotas: Option<crate::quotas::Quotas>,
    /// Redis of the shared quota counters (`--quota-redis`).
    pub quota_redis: Option<String>,
    /// A candidate policy set decided beside the active one, never
    /// enforced (`--shadow-policies`).
    pub shadow: Option<crate::shadow::Shadow>,
    /// Calls between agents: this agent's fleet identity and the
    /// delegated tasks in force (none: calls to other agents are refused,
    /// and with `only_delegated` every call is).
    pub a2a: Option<super::a2a::A2aConfig>,
    /// The agent's just-in-time grants in force: `tool`, `action` and
    /// `tier_ceiling` grants lower decisions (never tier 4 or deny).
    pub grants: Option<crate::grants::GrantsInForce>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            limits: GatewayLimits::default(),
            approval_sla: DEFAULT_APPROVAL_SLA,
            max_pending_approvals: crate::approvals::DEFAULT_MAX_PENDING_PER_AGENT,
            connect_timeout: Duration::from_secs(10),
            upstream_timeout: Duration::from_secs(60),
            quotas: None,
            quota_redis: None,
            shadow: None,
            a2a: None,
            grants: None,
        }
    }
}

/// The tool gateway of one agent. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) shared: Arc<Shared>,
}

/// The stages' handles. Each stage takes only the handles it needs; the
/// pipeline (see [`pipeline`](super::pipeline)) hands them out.
pub(crate) struct Shared {
    /// The agent governed.
    pub(crate) identity: AgentIdentity,
    /// The tier policy, hot-reloaded.
    pub(crate) policy: Arc<PolicyStore>,
    /// Terminates the agent's TLS.
    pub(crate) tls: Arc<TlsTerminator>,
    /// Request bounds and timeouts.
    pub(crate) limits: GatewayLimits,
    /// Input: what records, approvals and notices keep of a call's input.
    pub(crate) inputs: Inputs,
    /// Attempt: the decision recorded before the tier is enforced.
    pub(crate) journal: Journal,
    /// Tiers: approvals and quarantine.
    pub(crate) oversight: Oversight,
    /// Forward: the pooled client and the credentials.
    pub(crate) upstream: Upstream,
    /// Tier 2's reversal windows.
    pub(crate) compensations: Compensations,
    /// MCP server requests awaiting the agent's answer.
    pub(crate) mcp_sessions: McpSessions,
    /// Record: where every call's event goes.
    pub(crate) recorder: Recorder,
    /// Quotas: raise the decision of a call that passes a limit.
    pub(crate) quotas: Option<crate::quotas::Quotas>,
    /// Shadow: the candidate policy's decision, compared, not enforced.
    pub(crate) shadow: Option<crate::shadow::Shadow>,
    /// Calls between agents: minting and answer checks (caller), task
    /// narrowing (callee).
    pub(crate) a2a: super::a2a::A2a,
    /// Grants in force, applied to each decision.
    pub(crate) grants: Option<crate::grants::GrantsInForce>,
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
    /// Kernel quarantine.
    pub quarantine: QuarantineSwitch,
    /// Where every call's event goes (the log, metrics, webhooks and
    /// audit trail consume it; see [`crate::events::EventBus`]).
    pub sink: Option<Arc<dyn GatewaySink>>,
    /// Where each decided call's attempt is recorded before it is
    /// forwarded or held (the audit trail); `None` records none.
    pub journal: Option<Arc<dyn AttemptJournal>>,
    /// The deployment's key of the keyed hashes of redacted input fields
    /// (see [`crate::redaction`]); without one, fields the policy says to
    /// hash are dropped instead.
    pub redaction_key: Option<Arc<RedactionKey>>,
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
        let a2a = super::a2a::A2a::new(
            parts.config.a2a,
            parts.resolver.clone(),
            parts.config.connect_timeout,
        );
        let client = upstream_client(
            parts.tls.upstream_client_config(),
            parts.resolver,
            parts.config.connect_timeout,
        );
        let max_answer_bytes = parts.config.limits.max_body_bytes;
        let gateway = Gateway {
            shared: Arc::new(Shared {
                identity: parts.identity.clone(),
                policy: parts.policy.clone(),
                tls: parts.tls,
                limits: parts.config.limits,
                inputs: Inputs::new(parts.redaction_key),
                journal: Journal::new(parts.journal),
                oversight: Oversight {
                    agent: parts.identity.id,
                    approvals: parts.approvals,
                    quarantine: parts.quarantine,
                    policy: parts.policy,
                    sla: parts.config.approval_sla,
                    floor: Default::default(),
                },
                upstream: Upstream {
                    client,
                    secrets: parts.secrets,
                    timeout: parts.config.upstream_timeout,
                    max_answer_bytes,
                    redactors: RedactorCache::default(),
                },
                compensations: Compensations::default(),
                mcp_sessions: McpSessions::default(),
                recorder: Recorder::new(parts.sink),
                quotas: parts.config.quotas,
                shadow: parts.config.shadow,
                a2a,
                grants: parts.config.grants,
            }),
        };
        redecide_on_change(&gateway.shared);
        Ok(gateway)
    }

    /// Quarantines the agent now (every later call refused; the kernel
    /// quarantine follows the refusal that caused it) and cancels every
    /// approval of the agent that is pending or approved but not yet
    /// forwarded, telling the approvers. Also the entry point of a kill
    /// switch.
    pub async fn quarantine(&self, reason: &str) {
        self.shared.oversight.quarantine_agent(reason).await;
    }

    /// SHA-256 fingerprint of the sidecar CA the agent trusts.
    pub fn ca_fingerprint(&self) -> String {
        self.shared.tls.ca().fingerprint().to_string()
    }
}

/// Re-decides the held calls (see [`redecide`](super::redecide)) after
/// every policy change, until the gateway is dropped. Needs a tokio runtime
/// (none: nothing is spawned and each forward's own re-check remains).
fn redecide_on_change(gw: &Arc<Shared>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no async runtime: held calls are re-checked only when forwarded");
        return;
    };
    let mut changes = gw.policy.subscribe();
    let weak: Weak<Shared> = Arc::downgrade(gw);
    runtime.spawn(async move {
        while changes.changed().await.is_ok() {
            let Some(gw) = weak.upgrade() else { return };
            let policy = gw.policy.current();
            if let Some(q) = &gw.quotas {
                match q.set_limits(policy.quotas(&gw.identity.id).to_vec()) {
                    Ok(true) => tracing::info!(agent = %gw.identity.id, limits = q.limits().len(), "quotas: the reloaded policy's limits are in force; counters kept"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(agent = %gw.identity.id, error = %e, "quotas: the reloaded policy's limits are refused; the previous limits stay in force"),
                }
            }
            super::redecide::redecide(&policy, &gw.oversight.approvals, &gw.identity.id).await;
        }
    });
}
