//! Agent-to-agent delegation: a fleet CA issues each agent a short-lived
//! identity (`spiffe://<trust-domain>/team/<team>/agent/<agent>`); a calling
//! agent's sidecar authenticates to the callee's sidecar with that identity
//! (mTLS) and attaches a biscuit token, signed with the caller's identity
//! key, that names only the tools it delegates for this call. The callee's
//! sidecar verifies signature, audience, expiry and replay and allows a
//! call only on the intersection of its own policy and the delegation; the
//! caller's sidecar validates the answer against the tool's JSON schema.
//! `docs/delegation.md` describes formats and behaviour.

pub mod answer;
pub mod config;
pub mod event;
pub mod fleet_ca;
pub mod identity;
pub mod sessions;
pub mod token;

/// Header carrying the delegation token (base64url biscuit) between sidecars.
pub const TOKEN_HEADER: &str = "x-agent-delegation";
/// Header by which an agent narrows a delegation for one call (comma-separated
/// tools); the sidecar strips it before forwarding.
pub const NARROW_HEADER: &str = "x-agent-delegate-tools";

/// Why a call between agents was refused; `reason()` is the metric label of
/// `agent_sidecar_delegation_refused_total{reason}`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// No client identity was presented (no or untrusted client certificate).
    #[error(
        "no fleet identity presented: the caller must authenticate with a certificate issued by the fleet CA"
    )]
    MissingIdentity,
    /// No delegation token in the request.
    #[error("no delegation token in header {TOKEN_HEADER}")]
    MissingToken,
    /// The token does not verify with the caller's identity key.
    #[error("delegation token signature does not verify with the caller's identity key: {0}")]
    Signature(String),
    /// The token was minted for another agent.
    #[error("delegation token is for audience {found}, this agent is {expected}")]
    Audience {
        /// Audience named in the token.
        found: String,
        /// This agent's identity.
        expected: String,
    },
    /// The token was minted by someone other than the caller.
    #[error("delegation token names delegator {found}, the caller is {peer}")]
    Delegator {
        /// Delegator named in the token.
        found: String,
        /// Identity of the TLS peer.
        peer: String,
    },
    /// The token has expired.
    #[error("delegation token expired at {0} (unix seconds)")]
    Expired(i64),
    /// The token's unique id was already used within its lifetime.
    #[error("delegation token {0} was already used: tokens are single-use")]
    Replay(String),
    /// The tool is not delegated (or an attenuation block forbids it).
    #[error("tool {0} is not delegated to this agent by the caller's token")]
    NotDelegated(String),
    /// The callee's own policy does not allow the tool.
    #[error("tool {0} is not allowed by this agent's own policy")]
    OwnPolicy(String),
    /// The token is malformed.
    #[error("malformed delegation token: {0}")]
    Malformed(String),
    /// The callee's policy does not accept delegations from this agent.
    #[error(
        "this agent does not accept delegations from {0}: its policy's delegation.accept_from does not list it"
    )]
    NotAccepted(String),
    /// The agent acts only under a delegation and the call carries the
    /// trace of none in force.
    #[error(
        "this agent acts only for a delegator (delegation.only_delegated) and this call is not part of a delegated task in force: send it with the traceparent of the task"
    )]
    NotUnderDelegation,
}

impl Refusal {
    /// The `reason` label of `agent_sidecar_delegation_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::MissingIdentity => "missing_identity",
            Refusal::MissingToken => "missing_token",
            Refusal::Signature(_) => "signature",
            Refusal::Audience { .. } => "audience",
            Refusal::Delegator { .. } => "delegator",
            Refusal::Expired(_) => "expired",
            Refusal::Replay(_) => "replay",
            Refusal::NotDelegated(_) => "not_delegated",
            Refusal::OwnPolicy(_) => "own_policy",
            Refusal::Malformed(_) => "malformed",
            Refusal::NotAccepted(_) => "not_accepted",
            Refusal::NotUnderDelegation => "delegation_required",
        }
    }
}

/// Errors of the fleet CA, identities and minting.
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate: {0}")]
    Cert(String),
    /// The identity certificate is expired or not yet valid.
    #[error(
        "identity certificate {path} is not valid now (valid until {not_after}); issue a fresh one with `agent-sidecar fleet-ca issue`"
    )]
    ExpiredIdentity {
        /// Certificate file.
        path: std::path::PathBuf,
        /// Its notAfter (unix seconds).
        not_after: i64,
    },
    /// The agent asked to delegate more than its policy allows.
    #[error(
        "cannot delegate {tool} to {audience}: this agent's policy does not allow delegating it"
    )]
    Widen {
        /// Tool requested.
        tool: String,
        /// Audience.
        audience: String,
    },
    /// Token construction failed.
    #[error("token: {0}")]
    Token(String),
}
