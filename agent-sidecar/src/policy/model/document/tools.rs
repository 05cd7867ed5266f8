//! Tool declarations: how a request is recognised as a tool's action and
//! where its risk attributes are found.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::model::tier::Tier;

/// A tool: an HTTP API (by host) or an MCP server, and its actions.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolDecl {
    /// Tool name, unique in the set; rules name it in `when.tool`.
    pub name: String,
    /// Free text for reviewers.
    #[serde(default)]
    pub description: Option<String>,
    /// Recognise HTTP requests to this host.
    #[serde(default)]
    pub http: Option<HttpMatch>,
    /// Recognise MCP `tools/call` requests to this server.
    #[serde(default)]
    pub mcp: Option<McpMatch>,
    /// Attribute sources shared by every action of the tool.
    #[serde(default)]
    pub attributes: AttributeSources,
    /// The credential the gateway injects into every upstream request of
    /// the tool. The agent never holds it: whatever `Authorization` it
    /// sends is removed.
    #[serde(default)]
    pub credential: Option<CredentialDecl>,
    /// What the audit record, the approvals journal, the webhooks and the
    /// logs keep of every action's input (its actions' `redact` add to it,
    /// field by field). The call forwarded to the tool is never changed.
    #[serde(default)]
    pub redact: Option<RedactDecl>,
    /// The tool's actions.
    pub actions: Vec<ActionDecl>,
}

/// `credential:` of a tool: a secret the sidecar was given by name
/// (`--secret NAME=file:PATH` or `NAME=env:VAR`) and how it is sent.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialDecl {
    /// Name of the secret.
    pub secret: String,
    /// Request header that carries it. Default: `authorization`.
    #[serde(default)]
    pub header: Option<String>,
    /// Header value, with `{secret}` where the secret goes. Default:
    /// `Bearer {secret}`.
    #[serde(default)]
    pub format: Option<String>,
}

/// `http:` of a tool.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpMatch {
    /// Host name (case-insensitive, without port). The gateway terminates
    /// TLS for it (inspects every request) and the agent may reach it.
    pub host: String,
    /// HTTPS port. Default: 443.
    #[serde(default)]
    pub port: Option<u16>,
}

/// `mcp:` of a tool.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpMatch {
    /// MCP server name.
    pub server: String,
    /// The server's Streamable HTTP endpoint, `https://HOST[:PORT]/PATH`.
    /// JSON-RPC POSTed there is decided per `tools/call`; without it the
    /// tool is recognised only in fixtures and `policy explain`.
    #[serde(default)]
    pub url: Option<String>,
    /// Requests the server may send the agent (`roots/list`,
    /// `sampling/createMessage`, `elicitation/create`...). Any other
    /// server-initiated request is answered by the gateway with a JSON-RPC
    /// error and never reaches the agent.
    #[serde(default)]
    pub server_requests: Vec<String>,
}

/// One action of a tool.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionDecl {
    /// Action name, unique within the tool; rules name it in `when.action`.
    pub name: String,
    /// Free text for reviewers.
    #[serde(default)]
    pub description: Option<String>,
    /// HTTP method (HTTP tools).
    #[serde(default)]
    pub method: Option<String>,
    /// HTTP path pattern (HTTP tools): literal segments, `{name}` for one
    /// segment, and a final `*` for any rest.
    #[serde(default)]
    pub path: Option<String>,
    /// MCP tool name (MCP tools).
    #[serde(default)]
    pub mcp_tool: Option<String>,
    /// Baseline tier of the action (default: `defaults.action`).
    #[serde(default)]
    pub tier: Option<Tier>,
    /// Attribute sources of this action (override the tool's).
    #[serde(default)]
    pub attributes: AttributeSources,
    /// How a forwarded call of this action is undone: another action of the
    /// same tool that the owner may trigger through the admin API within
    /// `window` (tier 2's reversal window).
    #[serde(default)]
    pub compensation: Option<CompensationDecl>,
    /// What is kept of this action's input (adds to the tool's `redact`;
    /// a field named in both takes the action's method).
    #[serde(default)]
    pub redact: Option<RedactDecl>,
}

/// `redact:` of a tool or an action: per field of a call's input, what
/// every record, journal line, webhook and log line holds of it. Body
/// fields (MCP: arguments) that no `body` entry names and no attribute
/// reads are dropped; query parameters and headers are shown as received
/// unless named here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactDecl {
    /// JSON pointer (RFC 6901) into the JSON body or the MCP arguments ->
    /// method, e.g. `/iban: hash`. A `*` segment stands for every array
    /// element or object member (`/lines/*/card: drop`); `""` is the whole
    /// body. The most specific pointer that covers a field decides.
    #[serde(default)]
    pub body: BTreeMap<String, RedactMethod>,
    /// Query parameter name -> method. Unnamed parameters are kept.
    #[serde(default)]
    pub query: BTreeMap<String, RedactMethod>,
    /// Header name (case-insensitive) -> method. Unnamed headers are kept
    /// (cookies are always shown as `[redacted]`; credentials and
    /// transport headers never).
    #[serde(default)]
    pub headers: BTreeMap<String, RedactMethod>,
}

/// What happens to one field of a call's input outside the forwarded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedactMethod {
    /// Kept as sent.
    Keep,
    /// Replaced by a keyed hash (HMAC-SHA256 with the deployment's
    /// redaction key): equal values give equal hashes, so they correlate
    /// across calls and agents, and nobody without the key can read or
    /// guess them.
    Hash,
    /// Removed.
    Drop,
}

/// `compensation:` of an action.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompensationDecl {
    /// The compensating action (of the same tool). HTTP: its path's
    /// `{name}` segments are filled from the original request's path, then
    /// from the top-level fields of the original JSON response (each value
    /// must be a plain path segment); the body holds the `carry` fields of
    /// the original body and the trigger's fields. MCP: each argument the
    /// compensating tool declares comes from the trigger, else the `carry`
    /// fields of the original arguments, else the original result's
    /// `structuredContent`.
    pub action: String,
    /// How long after the forward the owner may trigger it, e.g. `15m`,
    /// `2h`, `30s`. Default: `15m`.
    #[serde(default)]
    pub window: Option<String>,
    /// Top-level fields of the original call's JSON body (MCP: arguments)
    /// that the compensating call takes over. Nothing else the agent sent
    /// reaches it. Default: none.
    #[serde(default)]
    pub carry: Vec<String>,
}

/// Where each risk attribute comes from.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeSources {
    /// Money moved or committed; may name its `currency` source.
    #[serde(default)]
    pub amount: Option<Source>,
    /// Data sensitivity classes touched (a string or a list of strings).
    #[serde(default)]
    pub sensitivity: Option<Source>,
    /// Number of records (an integer, or with `count: true` the length of
    /// the array found).
    #[serde(default)]
    pub records: Option<Source>,
    /// `reversible`, `compensable` or `irreversible`.
    #[serde(default)]
    pub reversibility: Option<Source>,
    /// Regulatory scopes (a string or a list of strings).
    #[serde(default)]
    pub regulatory: Option<Source>,
}

/// Where one attribute is found: exactly one of `body`, `query`, `header`,
/// `const`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// JSON pointer (RFC 6901) into the JSON body or the MCP arguments,
    /// e.g. `/payment/amount`.
    #[serde(default)]
    pub body: Option<String>,
    /// Query parameter name.
    #[serde(default)]
    pub query: Option<String>,
    /// Header name (case-insensitive).
    #[serde(default)]
    pub header: Option<String>,
    /// A constant value.
    #[serde(default, rename = "const")]
    pub constant: Option<serde_json::Value>,
    /// Value when the source is absent from the request; without it an
    /// absent value is a missing attribute.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// `records` only: count the elements of the array found.
    #[serde(default)]
    pub count: bool,
    /// `amount` only: where the currency code is (default: the base
    /// document's `currency`).
    #[serde(default)]
    pub currency: Option<Box<Source>>,
}
