//! From a request to an [`Action`]: which declared tool and action it is,
//! and its attributes, extracted as the tool's declaration says.

use super::{
    action::{Action, ActionInput, ActionInputError, ActionTarget, AgentIdentity, Request},
    extract::{RequestView, extract_all, split_query},
    set::CompiledPolicySet,
    tool::Route,
};

impl CompiledPolicySet {
    /// Whether the REST tool of `host` declares an action with `method`
    /// (upper case).
    pub fn declares_http_method(&self, host: &str, method: &str) -> bool {
        let Some(&tool) = self.hosts.get(&host.to_ascii_lowercase()) else {
            return false;
        };
        self.tools[tool as usize].actions.iter().any(|&a| {
            matches!(&self.actions[a as usize].route, Route::Http { method: m, .. } if m == method)
        })
    }

    /// Recognises `request` by the tool declarations (HTTP host, method and
    /// path pattern; MCP server and tool name) and extracts the declared
    /// attributes. A request no declaration matches yields an action without
    /// tool (or without action name), which decides to `defaults.unknown`.
    pub fn action_from_request(&self, agent: AgentIdentity, request: &Request) -> Action {
        match request {
            Request::Http(h) => {
                let host = h
                    .host
                    .rsplit_once(':')
                    .map_or(h.host.as_str(), |(host, port)| {
                        if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':') {
                            host
                        } else {
                            h.host.as_str()
                        }
                    });
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase();
                let (path, mut query) = split_query(&h.path);
                query.extend(h.query.iter().map(|(k, v)| (k.clone(), v.clone())));
                let target = ActionTarget::Http {
                    host: host.clone(),
                    method: h.method.to_ascii_uppercase(),
                    path: path.to_string(),
                };
                let tool = self.hosts.get(&host).copied();
                let act = tool.and_then(|t| {
                    self.tools[t as usize]
                        .actions
                        .iter()
                        .copied()
                        .find(|&a| self.actions[a as usize].route.matches_http(&h.method, path))
                });
                let view = RequestView {
                    body: h.body.as_ref(),
                    query,
                    headers: &h.headers,
                };
                self.build(agent, tool, act, target, &view)
            }
            Request::Mcp(m) => {
                let target = ActionTarget::Mcp {
                    server: m.server.clone(),
                    tool: m.tool.clone(),
                };
                let tool = self.mcp_servers.get(&m.server).copied();
                let act = tool.and_then(|t| {
                    self.tools[t as usize]
                        .actions
                        .iter()
                        .copied()
                        .find(|&a| self.actions[a as usize].route == Route::Mcp(m.tool.clone()))
                });
                let headers = Default::default();
                let view = RequestView {
                    body: Some(&m.arguments),
                    query: Vec::new(),
                    headers: &headers,
                };
                self.build(agent, tool, act, target, &view)
            }
        }
    }

    fn build(
        &self,
        agent: AgentIdentity,
        tool: Option<u32>,
        act: Option<u32>,
        target: ActionTarget,
        view: &RequestView<'_>,
    ) -> Action {
        Action {
            agent,
            tool: tool.map(|t| self.tools[t as usize].name.to_string()),
            action: act.map(|a| self.actions[a as usize].name.to_string()),
            target: Some(target),
            attributes: act
                .map(|a| extract_all(&self.actions[a as usize].sources, view))
                .unwrap_or_default(),
        }
    }

    /// The action an [`ActionInput`] describes (fixtures, `policy explain`),
    /// with the agent's identity filled from the set.
    pub fn action_from_input(&self, input: &ActionInput) -> Result<Action, ActionInputError> {
        let identity = self.identity(&input.agent, &input.environment);
        Ok(match input.request()? {
            Some(req) => self.action_from_request(identity, &req),
            None => Action {
                agent: identity,
                tool: input.tool.clone(),
                action: input.action.clone(),
                target: None,
                attributes: input.attributes.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests;
