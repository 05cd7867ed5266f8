//! What the tool gateway needs from the policy besides decisions: which
//! hosts it terminates (every host a tool declares), where MCP endpoints
//! are, which credential each tool gets, and how forwarded actions are
//! compensated.

use std::{collections::HashMap, sync::Arc, time::Duration};

use hyper::http::Uri;

pub use super::gateway_table::{
    ActionRoute, Compensation, Credential, DEFAULT_COMPENSATION_WINDOW, HostEndpoint, McpEndpoint,
};
#[cfg(test)]
pub(crate) use super::redaction::pointer_tokens;
pub use super::redaction::{BodyRule, FieldRedaction, RedactMethod};
use super::{
    action::{Action, ActionTarget, AgentIdentity},
    document::{CredentialDecl, ToolDecl},
    error::Problem,
    gateway_table::GatewayTable,
    scoped_doc::Doc,
    set::CompiledPolicySet,
    tier::Tier,
    tool::{Route, ToolTable},
};
use crate::credentials::{CredentialError, Injection, valid_name};

impl GatewayTable {
    /// Collects endpoints, credentials and compensations from every
    /// document's tools; problems are appended.
    pub(crate) fn compile(
        docs: &[Doc<'_>],
        tools: &ToolTable,
        problems: &mut Vec<Problem>,
    ) -> Self {
        let mut table = GatewayTable::default();
        for doc in docs {
            for (ti, decl) in doc.doc().tools().iter().enumerate() {
                let path = format!("tools[{ti}]");
                if tools
                    .names
                    .get(decl.name.as_str())
                    .is_none_or(|&id| tools.tools[id as usize].scope != doc.scope)
                {
                    continue;
                }
                let name: Arc<str> = decl.name.as_str().into();
                table.endpoint(decl, &name, doc, &path, problems);
                let cred = decl
                    .credential
                    .as_ref()
                    .and_then(|c| credential(c, doc, &path, problems));
                if let Some(cred) = cred {
                    table.credentials.insert(name.clone(), cred);
                }
                table.actions(decl, &name, doc, &path, problems);
            }
        }
        table
    }

    fn endpoint(
        &mut self,
        decl: &ToolDecl,
        name: &Arc<str>,
        doc: &Doc<'_>,
        path: &str,
        problems: &mut Vec<Problem>,
    ) {
        let (host, port, mcp) = if let Some(h) = &decl.http {
            (
                h.host.trim().to_ascii_lowercase(),
                h.port.unwrap_or(443),
                None,
            )
        } else if let Some(m) = &decl.mcp {
            let Some(url) = &m.url else { return };
            match parse_mcp_url(url) {
                Ok((host, port, p)) => (
                    host,
                    port,
                    Some((p, m.server.clone(), m.server_requests.clone())),
                ),
                Err(what) => {
                    problems.push(Problem::new(
                        doc.parsed.at(&format!("{path}.mcp.url")),
                        format!("`{url}` is not a usable MCP endpoint: {what}"),
                        "write the server's Streamable HTTP endpoint as https://HOST[:PORT]/PATH (e.g. https://crm-mcp.example.internal/mcp)",
                    ));
                    return;
                }
            }
        } else {
            return;
        };
        let entry = self
            .hosts
            .entry(host.clone())
            .or_insert_with(|| HostEndpoint {
                host,
                port,
                rest_tool: None,
                mcp: Vec::new(),
            });
        if entry.port != port {
            problems.push(Problem::new(
                doc.parsed.at(path),
                format!(
                    "tool `{}` uses {}:{port}, but another tool uses port {} of that host",
                    decl.name, entry.host, entry.port
                ),
                "declare every tool of one host on the same HTTPS port",
            ));
            return;
        }
        match mcp {
            None => entry.rest_tool = Some(name.clone()),
            Some((path, server, server_requests)) => entry.mcp.push(McpEndpoint {
                path,
                tool: name.clone(),
                server,
                server_requests,
            }),
        }
    }

    fn actions(
        &mut self,
        decl: &ToolDecl,
        name: &Arc<str>,
        doc: &Doc<'_>,
        path: &str,
        problems: &mut Vec<Problem>,
    ) {
        for (ai, a) in decl.actions.iter().enumerate() {
            let action: Arc<str> = a.name.as_str().into();
            let route = match (&a.method, &a.path, &a.mcp_tool) {
                (Some(m), Some(p), _) => ActionRoute::Http {
                    method: m.trim().to_ascii_uppercase(),
                    path: p.clone(),
                },
                (_, _, Some(t)) => ActionRoute::Mcp(t.clone()),
                _ => continue,
            };
            self.routes.insert((name.clone(), action.clone()), route);
            let Some(c) = &a.compensation else { continue };
            let cpath = format!("{path}.actions[{ai}].compensation");
            if !decl.actions.iter().any(|o| o.name == c.action) || c.action == a.name {
                problems.push(Problem::new(
                    doc.parsed.at(&format!("{cpath}.action")),
                    format!(
                        "compensation `{}` of action `{}` is not another action of tool `{}`",
                        c.action, a.name, decl.name
                    ),
                    "name another action of the same tool that undoes this one (declare it under the tool's `actions:`)",
                ));
                continue;
            }
            let window = match &c.window {
                None => DEFAULT_COMPENSATION_WINDOW,
                Some(w) => match parse_duration(w) {
                    Some(d) if !d.is_zero() => d,
                    _ => {
                        problems.push(Problem::new(
                            doc.parsed.at(&format!("{cpath}.window")),
                            format!("`{w}` is not a duration"),
                            "write a positive number followed by s, m, h or d (e.g. 15m)",
                        ));
                        continue;
                    }
                },
            };
            self.compensations.insert(
                (name.clone(), action),
                Compensation {
                    action: c.action.as_str().into(),
                    window,
                    carry: c.carry.iter().map(|f| Arc::from(f.as_str())).collect(),
                },
            );
        }
    }
}

fn credential(
    c: &CredentialDecl,
    doc: &Doc<'_>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Credential> {
    if !valid_name(&c.secret) {
        problems.push(Problem::new(
            doc.parsed.at(&format!("{path}.credential.secret")),
            format!("`{}` is not a secret name", c.secret),
            "secret names use a-z, 0-9, `-` and `_`; give the sidecar the value with --secret NAME=file:PATH",
        ));
        return None;
    }
    let header = c.header.as_deref().unwrap_or("authorization").trim();
    let format = c.format.as_deref().unwrap_or("Bearer {secret}");
    match Injection::new(&header.to_ascii_lowercase(), format) {
        Ok(injection) => Some(Credential {
            secret: c.secret.clone(),
            injection,
        }),
        Err(e) => {
            let field = match e {
                CredentialError::Format { .. } => "format",
                _ => "header",
            };
            problems.push(Problem::new(
                doc.parsed.at(&format!("{path}.credential.{field}")),
                format!("credential {e}"),
                "write a header such as authorization or x-api-key, and a format with `{secret}` where the secret goes, e.g. `Bearer {secret}`",
            ));
            None
        }
    }
}

fn parse_mcp_url(url: &str) -> Result<(String, u16, String), &'static str> {
    let uri: Uri = url.parse().map_err(|_| "it is not a URL")?;
    if uri.scheme_str() != Some("https") {
        return Err("the scheme must be https (the gateway terminates TLS for the host)");
    }
    let host = uri.host().ok_or("it has no host")?.to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return Err("the host must be a name, not an IP address");
    }
    if uri.query().is_some() {
        return Err("it has a query");
    }
    let path = match uri.path() {
        "" => "/".to_string(),
        p => p.to_string(),
    };
    Ok((host, uri.port_u16().unwrap_or(443), path))
}

/// Parses a duration in the common `humantime` form: `30s`, `15m`, `2h`,
/// `1d`, `1h30m`, `2days 4h` (every number needs its unit).
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

impl CompiledPolicySet {
    /// The inspected host `host` (lower case), if a tool declares it.
    pub fn inspected(&self, host: &str) -> Option<&HostEndpoint> {
        self.gateway.hosts.get(host)
    }

    /// Every inspected host.
    pub fn inspected_hosts(&self) -> impl Iterator<Item = &HostEndpoint> {
        self.gateway.hosts.values()
    }

    /// The credential of `tool`, if it declares one.
    pub fn credential(&self, tool: &str) -> Option<&Credential> {
        self.gateway.credentials.get(tool)
    }

    /// Every secret name some tool needs.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .gateway
            .credentials
            .values()
            .map(|c| c.secret.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// How a forwarded `tool.action` is compensated, if it can be.
    pub fn compensation(&self, tool: &str, action: &str) -> Option<&Compensation> {
        self.gateway
            .compensations
            .get(&(Arc::from(tool), Arc::from(action)))
    }

    /// What the records, the approvals journal, the webhooks and the logs
    /// keep of the input of `tool.action`; `None` for an undeclared one
    /// (nothing of its body is kept).
    pub fn redaction(&self, tool: &str, action: &str) -> Option<&Arc<FieldRedaction>> {
        self.gateway.redactions.get(tool)?.get(action)
    }

    /// The declared route of `tool.action`.
    pub fn action_route(&self, tool: &str, action: &str) -> Option<&ActionRoute> {
        self.gateway
            .routes
            .get(&(Arc::from(tool), Arc::from(action)))
    }

    /// The MCP tool names the actions of `server`'s tool declare.
    pub fn declared_mcp_tools(&self, server: &str) -> Vec<&str> {
        let Some(&tid) = self.mcp_servers.get(server) else {
            return Vec::new();
        };
        self.tools[tid as usize]
            .actions
            .iter()
            .filter_map(|&a| match &self.actions[a as usize].route {
                Route::Mcp(name) => Some(name.as_str()),
                Route::Http { .. } => None,
            })
            .collect()
    }

    /// Whether the agent may call MCP tool `name` of `server` at all: false
    /// only when the policy refuses it whatever its arguments (a `deny` or
    /// tier-4 rule without attribute conditions). Used to filter
    /// `tools/list`.
    pub fn may_call_mcp(&self, agent: &AgentIdentity, server: &str, name: &str) -> bool {
        let Some(&tid) = self.mcp_servers.get(server) else {
            return true;
        };
        let action = self.tools[tid as usize]
            .actions
            .iter()
            .map(|&a| &self.actions[a as usize])
            .find(|a| a.route == Route::Mcp(name.to_string()));
        let probe = Action {
            agent: agent.clone(),
            tool: Some(self.tools[tid as usize].name.to_string()),
            action: action.map(|a| a.name.to_string()),
            target: Some(ActionTarget::Mcp {
                server: server.to_string(),
                tool: name.to_string(),
            }),
            attributes: Default::default(),
        };
        let decision = self.decide(&probe);
        let unconditional = decision.rules.iter().all(|r| {
            self.rules
                .iter()
                .find(|rule| rule.id == r.id)
                .is_some_and(|rule| rule.cond.attrs() == 0)
        });
        !(decision.tier >= Tier::Halt && unconditional)
    }
}

/// Why a path pattern could not be filled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    /// No value for `{name}`.
    #[error("no value for `{{{0}}}`")]
    Missing(String),
    /// The value for `{name}` is not a plain path segment.
    #[error(
        "the value \"{value}\" for `{{{name}}}` is not a plain path segment: only letters, digits, `-`, `_`, `.` and `~` are used (no `%`, `/` or dot segments), so that it cannot name another route"
    )]
    NotASegment {
        /// The segment's name.
        name: String,
        /// The value, escaped.
        value: String,
    },
    /// The pattern ends in `*`.
    #[error("the pattern has a `*` segment")]
    Wildcard,
}

/// Whether `v` is a path segment that means itself to every server: RFC
/// 3986 unreserved characters only (so no percent-encoding, separators or
/// parameters), and not `.` or `..`.
pub fn plain_segment(v: &str) -> bool {
    !v.is_empty()
        && v != "."
        && v != ".."
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// Fills the `{name}` segments of `pattern` from `values` (by name). Every
/// value must be a [`plain_segment`].
pub fn fill_path(
    pattern: &str,
    values: &dyn Fn(&str) -> Option<String>,
) -> Result<String, FillError> {
    let mut out = String::new();
    for seg in pattern.trim_start_matches('/').split('/') {
        out.push('/');
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let v = values(name).ok_or_else(|| FillError::Missing(name.to_string()))?;
            if !plain_segment(&v) {
                return Err(FillError::NotASegment {
                    name: name.to_string(),
                    value: v.escape_default().to_string(),
                });
            }
            out.push_str(&v);
        } else if seg == "*" {
            return Err(FillError::Wildcard);
        } else {
            out.push_str(seg);
        }
    }
    Ok(out)
}

/// The `{name}` values of `path` against `pattern` (same segment count).
pub fn path_params(pattern: &str, path: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let segs = pattern.trim_start_matches('/').split('/');
    let parts = path.trim_start_matches('/').split('/');
    for (s, p) in segs.zip(parts) {
        if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            out.insert(name.to_string(), p.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests;
