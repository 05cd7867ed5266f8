//! The action model: what an agent asks a tool to do, by whom, and the risk
//! attributes that decide its tier.
//!
//! The gateway builds an [`Action`] from a request with
//! [`CompiledPolicySet::action_from_request`](crate::policy::CompiledPolicySet::action_from_request),
//! which recognises the tool from the policy's declarations and extracts the
//! attributes. Fixtures and `policy explain` may also give the tool, action
//! and attributes directly ([`ActionInput`]).

use std::{collections::BTreeMap, fmt};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// Who acts. The policy set is authoritative for `owner`, `team` and
/// `purpose`: [`CompiledPolicySet::identity`](crate::policy::CompiledPolicySet::identity)
/// fills them from the agent's document; decisions use only `id` and
/// `environment`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentIdentity {
    /// Agent id, as in the agent document's `id`.
    pub id: String,
    /// Deployment environment (`dev`, `staging`, `prod`...): selects the overlay.
    pub environment: String,
    /// Accountable owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Team the agent belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Business purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// How far an action can be undone, least to most severe.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Reversibility {
    /// Can be undone exactly.
    Reversible,
    /// Cannot be undone but can be compensated (a refund, a correcting entry).
    Compensable,
    /// Cannot be undone (a sent message, an executed payment, a deletion).
    Irreversible,
}

impl Reversibility {
    /// Every value, least severe first.
    pub const ALL: [Reversibility; 3] = [
        Reversibility::Reversible,
        Reversibility::Compensable,
        Reversibility::Irreversible,
    ];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reversibility::Reversible => "reversible",
            Reversibility::Compensable => "compensable",
            Reversibility::Irreversible => "irreversible",
        }
    }

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Reversibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A monetary amount. Written `{value: 120.5, currency: EUR}` or as a bare
/// number in the policy set's base currency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Money {
    /// Amount in units of `currency` (not cents).
    pub value: f64,
    /// ISO 4217 code; `None` means the policy set's base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            value: f64,
            #[serde(default)]
            currency: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bare(f64),
            Full(Full),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("an amount is a number or {value: NUMBER, currency: CODE}")
        })? {
            Raw::Bare(value) => Ok(Money {
                value,
                currency: None,
            }),
            Raw::Full(f) => Ok(Money {
                value: f.value,
                currency: f.currency,
            }),
        }
    }
}

impl JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An amount: a number in the base currency, or {value, currency}.",
            "oneOf": [
                { "type": "number" },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["value"],
                    "properties": {
                        "value": { "type": "number" },
                        "currency": { "type": "string", "description": "ISO 4217 code" }
                    }
                }
            ]
        })
    }
}

/// The risk attributes of one action. `None` means "not known": if the
/// action's tool declares the attribute and it is unknown, the decision is
/// at least the policy's `defaults.missing_attribute` tier (fail closed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// Money moved or committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// Data sensitivity classes touched (`public`, `internal`, `pii`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Vec<String>>,
    /// Number of records read or changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// How far the action can be undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversibility: Option<Reversibility>,
    /// Regulatory scopes the action falls under (`gdpr`, `sox`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regulatory: Option<Vec<String>>,
}

/// One action to decide.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Who acts.
    pub agent: AgentIdentity,
    /// Declared tool name; `None` when no declaration matched the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Declared action name within the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The request the action came from, for the audit record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ActionTarget>,
    /// Risk attributes.
    #[serde(default)]
    pub attributes: Attributes,
}

/// Where an action goes: an HTTP route or an MCP tool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ActionTarget {
    /// An HTTP request.
    Http {
        /// Host name, without port.
        host: String,
        /// Method, upper case.
        method: String,
        /// Path, without query.
        path: String,
    },
    /// An MCP `tools/call`.
    Mcp {
        /// MCP server name.
        server: String,
        /// Tool name within the server.
        tool: String,
    },
}

/// An HTTP request as the gateway sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// `Host` (or SNI / CONNECT authority); a `:port` suffix is ignored.
    pub host: String,
    /// Method.
    pub method: String,
    /// Path; a `?query` suffix is parsed into `query`.
    pub path: String,
    /// Query parameters (in addition to any in `path`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// Headers; names are matched case-insensitively.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// An MCP `tools/call` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpCall {
    /// MCP server name, as declared by a tool's `mcp.server`.
    pub server: String,
    /// `params.name`.
    pub tool: String,
    /// `params.arguments`; `body` pointers look here.
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// A request from an agent, before the policy recognised it.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// HTTP.
    Http(HttpRequest),
    /// MCP `tools/call`.
    Mcp(McpCall),
}

/// The action given to `policy explain --action` and in fixtures: the agent
/// id and environment, plus either a raw request (`http` or `mcp`, from
/// which the policy extracts the attributes) or the resolved `tool`,
/// `action` and `attributes`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionInput {
    /// Agent id.
    pub agent: String,
    /// Environment.
    pub environment: String,
    /// Declared tool name (with `action` and `attributes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Declared action name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Attributes, when `tool`/`action` are given.
    #[serde(default)]
    pub attributes: Attributes,
    /// A raw HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequest>,
    /// A raw MCP call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpCall>,
}

/// An [`ActionInput`] that mixes a raw request with resolved fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}; give either `http`, `mcp`, or `tool` + `action` + `attributes`")]
pub struct ActionInputError(pub String);

impl ActionInput {
    /// The raw request, if the input carries one. Errors when it carries
    /// two, or a request together with `tool`/`action`/`attributes`.
    pub fn request(&self) -> Result<Option<Request>, ActionInputError> {
        let resolved = self.tool.is_some()
            || self.action.is_some()
            || self.attributes != Attributes::default();
        match (&self.http, &self.mcp) {
            (Some(_), Some(_)) => Err(ActionInputError("both `http` and `mcp` are set".into())),
            (Some(_), None) | (None, Some(_)) if resolved => Err(ActionInputError(
                "a raw request cannot be combined with `tool`, `action` or `attributes`".into(),
            )),
            (Some(h), None) => Ok(Some(Request::Http(h.clone()))),
            (None, Some(m)) => Ok(Some(Request::Mcp(m.clone()))),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
