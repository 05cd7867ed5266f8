//! Filtering `tools/list` answers down to the tools an agent may call.

use serde_json::Value;

/// Removes from a `tools/list` response (`result.tools`) every tool the
/// agent may not call at all, and adds the sidecar's own `request_access`
/// when `allowed` says the agent may call it; returns how many tools were
/// removed or added.
///
/// A tool without a string `name` cannot be judged and is removed too.
/// Anything that is not a `tools/list` result (no `result.tools` array,
/// an error response) is left alone and counts 0.
pub fn filter_tools_list(response: &mut Value, allowed: impl Fn(&str) -> bool) -> usize {
    let Some(tools) = response
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(Value::as_array_mut)
    else {
        return 0;
    };
    let before = tools.len();
    tools.retain(|tool| {
        tool.get("name")
            .and_then(Value::as_str)
            .is_some_and(&allowed)
    });
    let mut changes = before - tools.len();
    // The sidecar's own tool, when the agent may ask for grants.
    let name = crate::gateway::grant_request::REQUEST_ACCESS;
    if allowed(name)
        && !tools
            .iter()
            .any(|t| t.get("name").and_then(Value::as_str) == Some(name))
    {
        tools.push(crate::gateway::grant_request::tool_definition());
        changes += 1;
    }
    changes
}

/// Filters, in a JSON-RPC answer that is one response or a batch of them,
/// the responses whose `id` is one of `ids`; returns how many tools were
/// removed in all.
pub(super) fn filter_answer(
    answer: &mut Value,
    ids: &[Value],
    allowed: &dyn Fn(&str) -> bool,
) -> usize {
    let filter_one = |response: &mut Value| {
        let wanted = response
            .get("id")
            .is_some_and(|id| !id.is_null() && ids.contains(id));
        if wanted && response.get("method").is_none() {
            filter_tools_list(response, allowed)
        } else {
            0
        }
    };
    match answer {
        Value::Array(items) => items.iter_mut().map(filter_one).sum(),
        response => filter_one(response),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn listing() -> Value {
        json!({"jsonrpc": "2.0", "id": 3, "result": {
            "tools": [
                {"name": "search", "description": "Search the web", "inputSchema": {"type": "object"}},
                {"name": "delete_repo", "inputSchema": {"type": "object"}},
                {"description": "no name"},
                {"name": "résumé_搜索", "inputSchema": {"type": "object"}}
            ],
            "nextCursor": "abc"
        }})
    }

    #[test]
    fn removes_disallowed_and_nameless_tools() {
        let mut response = listing();
        let removed = filter_tools_list(&mut response, |name| {
            name != "delete_repo" && name != "request_access"
        });
        assert_eq!(removed, 2);
        let names: Vec<_> = response["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["search", "résumé_搜索"]);
        assert_eq!(response["result"]["nextCursor"], "abc");
        assert_eq!(
            response["result"]["tools"][0]["description"],
            "Search the web"
        );
    }

    #[test]
    fn allow_all_removes_only_nameless_and_adds_the_sidecars_own_tool() {
        let mut response = listing();
        assert_eq!(filter_tools_list(&mut response, |_| true), 2);
        let tools = response["result"]["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 4);
        assert_eq!(tools[3]["name"], "request_access");
        assert_eq!(tools[3]["inputSchema"]["required"][0], "kind");
        // Listed once.
        assert_eq!(filter_tools_list(&mut response, |_| true), 0);
        let mut response = listing();
        assert_eq!(filter_tools_list(&mut response, |_| false), 4);
        assert_eq!(response["result"]["tools"], json!([]));
    }

    #[test]
    fn other_responses_untouched() {
        let mut error = json!({"jsonrpc": "2.0", "id": 3, "error": {"code": 1, "message": "x"}});
        let before = error.clone();
        assert_eq!(filter_tools_list(&mut error, |_| false), 0);
        assert_eq!(error, before);
        let mut odd = json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": "none"}});
        assert_eq!(filter_tools_list(&mut odd, |_| false), 0);
    }

    #[test]
    fn filter_answer_matches_ids_in_batches() {
        let mut batch =
            json!([listing(), {"jsonrpc": "2.0", "id": 4, "result": listing()["result"]}]);
        let removed = filter_answer(&mut batch, &[json!(4)], &|_| false);
        assert_eq!(removed, 4);
        assert_eq!(batch[0], listing());
        assert_eq!(batch[1]["result"]["tools"], json!([]));
        // a request from the server with a matching id is not a response
        let mut request =
            json!({"jsonrpc": "2.0", "id": 3, "method": "x", "result": listing()["result"]});
        assert_eq!(filter_answer(&mut request, &[json!(3)], &|_| false), 0);
        // string and number ids differ
        let mut single = listing();
        assert_eq!(filter_answer(&mut single, &[json!("3")], &|_| false), 0);
    }
}
