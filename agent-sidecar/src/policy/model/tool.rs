//! A declared tool and its actions, as compiled (by `policy/tools.rs`):
//! how each is recognised and where its attributes come from.

use std::{collections::HashMap, sync::Arc};

use serde_json::Value;

use super::{
    attribute::Values,
    defaults::Floor,
    index::{ActionId, ScopeId, ToolId},
    location::Location,
};

/// How a tool is recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ToolMatch {
    /// Lower-case host.
    Http(String),
    /// MCP server name.
    Mcp(String),
}

/// A declared tool.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tool {
    pub(crate) name: Arc<str>,
    /// The scope of the document that declares it.
    pub(crate) scope: ScopeId,
    pub(crate) location: Location,
    pub(crate) matcher: ToolMatch,
    pub(crate) actions: Vec<ActionId>,
}

/// One path segment of an HTTP route pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    Literal(String),
    /// `{name}`: any one segment.
    Param,
    /// A final `*`: any rest, including nothing.
    Rest,
}

/// How an action is recognised within its tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Http {
        /// Upper case.
        method: String,
        segments: Vec<Segment>,
    },
    Mcp(String),
}

impl Route {
    pub(crate) fn matches_http(&self, method: &str, path: &str) -> bool {
        let Route::Http {
            method: m,
            segments,
        } = self
        else {
            return false;
        };
        if !m.eq_ignore_ascii_case(method) {
            return false;
        }
        let mut parts = path.trim_start_matches('/').split('/');
        for seg in segments {
            match seg {
                Segment::Rest => return true,
                Segment::Literal(l) => {
                    if parts.next() != Some(l.as_str()) {
                        return false;
                    }
                }
                Segment::Param => {
                    if parts.next().is_none_or(str::is_empty) {
                        return false;
                    }
                }
            }
        }
        // A trailing slash is the same route.
        matches!(parts.next(), None | Some("")) && parts.next().is_none()
    }
}

/// A declared action.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ActionInfo {
    pub(crate) tool: ToolId,
    pub(crate) name: Arc<str>,
    /// `tool.action`.
    pub(crate) qualified: Arc<str>,
    pub(crate) location: Location,
    pub(crate) route: Route,
    /// The action's own `tier`, if it sets one.
    pub(crate) baseline: Option<Floor>,
    /// Attribute sources by `Attr as usize`.
    pub(crate) sources: [Option<Extract>; 5],
    /// Attributes declared (bit per `Attr`).
    pub(crate) declared: u8,
    /// Constant or default values used when the action does not carry one.
    pub(crate) fallback: Values,
}

/// Tools and actions of a set.
#[derive(Debug, Default)]
pub(crate) struct ToolTable {
    pub(crate) tools: Vec<Tool>,
    pub(crate) actions: Vec<ActionInfo>,
    pub(crate) names: HashMap<Arc<str>, ToolId>,
    pub(crate) hosts: HashMap<String, ToolId>,
    pub(crate) mcp_servers: HashMap<String, ToolId>,
}

/// Where a value is read from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum From {
    /// JSON pointer into the body / MCP arguments.
    Body(String),
    /// Query parameter.
    Query(String),
    /// Header, lower case.
    Header(String),
    /// A constant.
    Const(Value),
}

impl std::fmt::Display for From {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            From::Body(p) => write!(f, "body {p}"),
            From::Query(q) => write!(f, "query {q}"),
            From::Header(h) => write!(f, "header {h}"),
            From::Const(v) => write!(f, "const {v}"),
        }
    }
}

/// A compiled attribute source.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Extract {
    pub(crate) from: From,
    /// Count the elements of an array.
    pub(crate) count: bool,
    /// For amounts: where the currency code is.
    pub(crate) currency: Option<Box<Extract>>,
}
