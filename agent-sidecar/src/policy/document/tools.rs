//! Tool declarations: how a request is recognised as a tool's action and
//! where its risk attributes are found.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::policy::tier::Tier;

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
    /// The tool's actions.
    pub actions: Vec<ActionDecl>,
}

/// `http:` of a tool.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpMatch {
    /// Host name (case-insensitive, without port).
    pub host: String,
}

/// `mcp:` of a tool.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpMatch {
    /// MCP server name.
    pub server: String,
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
