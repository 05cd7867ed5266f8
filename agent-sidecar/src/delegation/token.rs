//! Delegation tokens: biscuits signed with the delegating agent's identity
//! key. Authority block: `delegator`, `audience`, `token_id`, `expires`
//! (unix seconds), one `tool` fact per delegated tool and a time check.
//! Attenuation blocks may only add checks: facts they add are not trusted by
//! the verifier's policy, so a token can be narrowed offline, never widened.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::{self, Term};
use biscuit_auth::{AuthorizerBuilder, Biscuit, BlockBuilder, PublicKey};

use super::identity::AgentIdentity;
use super::{DelegationError, Refusal};

/// Longest lifetime a verifier accepts (replay ids are kept this long).
pub const MAX_TTL: Duration = Duration::from_secs(600);

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn tok(e: impl std::fmt::Display) -> DelegationError {
    DelegationError::Token(e.to_string())
}

/// What an agent's policy lets it delegate: audience SPIFFE ID → tools.
#[derive(Debug, Clone, Default)]
pub struct DelegationPolicy {
    /// Tools delegable to each audience.
    pub may_delegate: BTreeMap<String, BTreeSet<String>>,
}

/// A minted token.
#[derive(Debug, Clone)]
pub struct Minted {
    /// Base64url biscuit, for [`super::TOKEN_HEADER`].
    pub token: String,
    /// Unique id.
    pub id: String,
    /// Expiry, unix seconds.
    pub expires: i64,
    /// Tools delegated.
    pub tools: BTreeSet<String>,
}

/// Mints a token for `audience` naming the tools `policy` lets this agent
/// delegate to it, narrowed to `narrow` when given (the agent's per-call
/// request). Asking for a tool outside the policy is refused, not dropped.
pub fn mint(
    identity: &AgentIdentity,
    policy: &DelegationPolicy,
    audience: &str,
    narrow: Option<&[String]>,
    ttl: Duration,
) -> Result<Minted, DelegationError> {
    let allowed = policy
        .may_delegate
        .get(audience)
        .cloned()
        .unwrap_or_default();
    let tools: BTreeSet<String> = match narrow {
        None => allowed,
        Some(req) => {
            for t in req {
                if !allowed.contains(t) {
                    return Err(DelegationError::Widen {
                        tool: t.clone(),
                        audience: audience.to_string(),
                    });
                }
            }
            req.iter().cloned().collect()
        }
    };
    let ttl = ttl.min(MAX_TTL);
    let exp_time = SystemTime::now() + ttl;
    let expires = unix(exp_time);
    let id = format!("{:032x}", rand::random::<u128>());
    let mut params = HashMap::new();
    params.insert(
        "delegator".to_string(),
        builder::string(&identity.spiffe_id),
    );
    params.insert("audience".to_string(), builder::string(audience));
    params.insert("id".to_string(), builder::string(&id));
    params.insert("exp".to_string(), builder::int(expires));
    params.insert("expdate".to_string(), builder::date(&exp_time));
    let mut b = Biscuit::builder()
        .code_with_params(
            "delegator({delegator}); audience({audience}); token_id({id}); expires({exp});
             check if time($t), $t <= {expdate};",
            params,
            HashMap::new(),
        )
        .map_err(tok)?;
    for t in &tools {
        b = b
            .fact(builder::fact("tool", &[builder::string(t)]))
            .map_err(tok)?;
    }
    let token = b
        .build(identity.keypair())
        .and_then(|t| t.to_base64())
        .map_err(tok)?;
    Ok(Minted {
        token,
        id,
        expires,
        tools,
    })
}

/// Narrows a token offline: appends a block allowing only `tools`. Needs no
/// key; the result verifies with the same root key.
pub fn attenuate(
    token: &str,
    root: PublicKey,
    tools: &[String],
) -> Result<String, DelegationError> {
    let t = Biscuit::from_base64(token, root).map_err(tok)?;
    let set: BTreeSet<Term> = tools.iter().map(|s| builder::string(s)).collect();
    let mut params = HashMap::new();
    params.insert("tools".to_string(), builder::set(set));
    let block = BlockBuilder::new()
        .code_with_params(
            "check if tool_call($t), {tools}.contains($t);",
            params,
            HashMap::new(),
        )
        .map_err(tok)?;
    t.append(block).and_then(|t| t.to_base64()).map_err(tok)
}

/// A verified delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Token id.
    pub id: String,
    /// Delegating agent.
    pub delegator: String,
}

/// Verifies tokens presented to this agent; remembers ids until expiry.
#[derive(Debug)]
pub struct Verifier {
    self_id: String,
    seen: Mutex<HashMap<String, i64>>,
}

impl Verifier {
    /// A verifier for the agent `self_id` (the audience tokens must name).
    pub fn new(self_id: impl Into<String>) -> Self {
        Self {
            self_id: self_id.into(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The SPIFFE ID tokens must name as audience.
    pub fn audience(&self) -> &str {
        &self.self_id
    }

    /// Verifies `token` presented by `peer` (SPIFFE ID and key from its
    /// verified client certificate) for a call of `tool`; allows only when
    /// the token delegates `tool` AND this agent's own policy allows it.
    pub fn verify(
        &self,
        token: Option<&str>,
        peer: Option<(&str, PublicKey)>,
        tool: &str,
        own_policy_allows: bool,
    ) -> Result<Verified, Refusal> {
        let (biscuit, verified, _) = self.admit_token(token, peer)?;
        if authorize(&biscuit, tool).is_err() {
            return Err(Refusal::NotDelegated(tool.to_string()));
        }
        if !own_policy_allows {
            return Err(Refusal::OwnPolicy(tool.to_string()));
        }
        Ok(verified)
    }

    /// Admits a token for a whole delegated task (the callee's inbound
    /// endpoint): checks as [`verify`](Self::verify) does, then resolves
    /// which of the delegated permissions every attenuation block lets
    /// through, so each later call is a set lookup.
    pub fn admit(
        &self,
        token: Option<&str>,
        peer: Option<(&str, PublicKey)>,
    ) -> Result<Admitted, Refusal> {
        let (biscuit, verified, expires) = self.admit_token(token, peer)?;
        let mut authorizer = AuthorizerBuilder::new()
            .build(&biscuit)
            .map_err(|e| Refusal::Malformed(e.to_string()))?;
        let named: Vec<(String,)> = authorizer
            .query("data($t) <- tool($t)")
            .map_err(|e| Refusal::Malformed(e.to_string()))?;
        let permissions = named
            .into_iter()
            .map(|(t,)| t)
            .filter(|t| authorize(&biscuit, t).is_ok())
            .collect();
        Ok(Admitted {
            verified,
            expires,
            permissions,
        })
    }

    fn admit_token(
        &self,
        token: Option<&str>,
        peer: Option<(&str, PublicKey)>,
    ) -> Result<(Biscuit, Verified, i64), Refusal> {
        let (peer_id, peer_key) = peer.ok_or(Refusal::MissingIdentity)?;
        let token = token.ok_or(Refusal::MissingToken)?;
        let biscuit =
            Biscuit::from_base64(token, peer_key).map_err(|e| Refusal::Signature(e.to_string()))?;
        let mut authorizer = AuthorizerBuilder::new()
            .build(&biscuit)
            .map_err(|e| Refusal::Malformed(e.to_string()))?;
        let facts: Vec<(String, String, String, i64)> = authorizer
            .query("data($i, $a, $d, $e) <- token_id($i), audience($a), delegator($d), expires($e)")
            .map_err(|e| Refusal::Malformed(e.to_string()))?;
        let [(id, audience, delegator, expires)] = <[_; 1]>::try_from(facts).map_err(|_| {
            Refusal::Malformed(
                "token must hold exactly one token_id, audience, delegator, expires".into(),
            )
        })?;
        if delegator != peer_id {
            return Err(Refusal::Delegator {
                found: delegator,
                peer: peer_id.to_string(),
            });
        }
        if audience != self.self_id {
            return Err(Refusal::Audience {
                found: audience,
                expected: self.self_id.clone(),
            });
        }
        let now_s = unix(SystemTime::now());
        if expires <= now_s {
            return Err(Refusal::Expired(expires));
        }
        if expires - now_s > MAX_TTL.as_secs() as i64 + 5 {
            return Err(Refusal::Malformed(format!(
                "lifetime beyond the {}s maximum",
                MAX_TTL.as_secs()
            )));
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.retain(|_, exp| *exp > now_s);
            if seen.insert(id.clone(), expires).is_some() {
                return Err(Refusal::Replay(id));
            }
        }
        Ok((biscuit, Verified { id, delegator }, expires))
    }
}

/// Authorizes one use of `tool` under `biscuit`: a `tool` fact of the
/// authority block names it and every block's checks (expiry, attenuation)
/// pass.
fn authorize(biscuit: &Biscuit, tool: &str) -> Result<(), Refusal> {
    let mut params = HashMap::new();
    params.insert("tool".to_string(), builder::string(tool));
    AuthorizerBuilder::new()
        .code_with_params(
            "tool_call({tool}); allow if tool($t), tool_call($t);",
            params,
            HashMap::new(),
        )
        .map(|a| a.time())
        .and_then(|a| a.build(biscuit))
        .map_err(|e| Refusal::Malformed(e.to_string()))?
        .authorize()
        .map(|_| ())
        .map_err(|_| Refusal::NotDelegated(tool.to_string()))
}

/// A token admitted for a delegated task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Token id and delegator.
    pub verified: Verified,
    /// Expiry, unix seconds.
    pub expires: i64,
    /// The permissions (`tool` or `tool.action`) the token lets through.
    pub permissions: BTreeSet<String>,
}
