//! The server requests the gateway passed to an agent and that the agent
//! has not answered yet: the only responses an agent may POST (see
//! [`mcp_peer`](super::mcp_peer)).

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use serde_json::Value;

/// Server requests remembered per session, at most.
const MAX_OUTSTANDING: usize = 1024;
/// Sessions remembered, at most.
const MAX_SESSIONS: usize = 4096;

/// The server requests passed to the agent and not answered yet, by MCP
/// server and session.
#[derive(Debug, Default)]
pub(crate) struct McpSessions {
    outstanding: Mutex<HashMap<(String, String), HashSet<String>>>,
}

impl McpSessions {
    /// Remembers that the agent got request `id` of `server` on
    /// `session`; false when the bounds are reached (the request is then
    /// not passed on).
    pub(crate) fn expect(&self, server: &str, session: &str, id: &Value) -> bool {
        let mut map = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        let key = (server.to_owned(), session.to_owned());
        if !map.contains_key(&key) && map.len() >= MAX_SESSIONS {
            return false;
        }
        let ids = map.entry(key).or_default();
        ids.len() < MAX_OUTSTANDING && ids.insert(id.to_string())
    }

    /// Whether `id` answers an outstanding request (which it then
    /// settles).
    pub(crate) fn answered(&self, server: &str, session: &str, id: &Value) -> bool {
        let mut map = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        let key = (server.to_owned(), session.to_owned());
        let Some(ids) = map.get_mut(&key) else {
            return false;
        };
        let found = ids.remove(&id.to_string());
        if ids.is_empty() {
            map.remove(&key);
        }
        found
    }
}
