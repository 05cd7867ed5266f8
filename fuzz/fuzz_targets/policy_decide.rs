//! Fuzzes what the tier policy does with an agent's request: recognising
//! the tool and action (host, method, path template, MCP server and tool),
//! extracting attributes (JSON pointers into the body, query parameters,
//! headers, counts, money with currencies) and evaluating every rule's
//! conditions, against the example policy set `examples/policies` (all
//! four levels, overlays, money and counts). `explain` must reach the same
//! decision as `decide`, and deciding twice gives the same decision.
//!
//! Input: one byte choosing the agent, environment and request kind, then
//! NUL-separated fields: HTTP host, method, path, a header value and a JSON
//! body; or MCP server, tool and JSON arguments. Seeds:
//! `fuzz/corpus/policy_decide/`.
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run policy_decide corpus/policy_decide
//! ```
#![no_main]

use std::{collections::BTreeMap, sync::LazyLock};

use agent_sidecar::policy::{
    CompiledPolicySet, HttpRequest, McpCall, Request, Snapshot, source::SourceFile,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

macro_rules! policy_file {
    ($path:literal) => {
        SourceFile {
            path: $path.to_string(),
            text: include_str!(concat!("../../examples/policies/", $path)).to_string(),
        }
    };
}

static SET: LazyLock<CompiledPolicySet> = LazyLock::new(|| {
    let files = vec![
        policy_file!("org.yaml"),
        policy_file!("agents/procurement-agent.yaml"),
        policy_file!("agents/support-agent.yaml"),
        policy_file!("overlays/prod.yaml"),
        policy_file!("roles/payments-operator.yaml"),
        policy_file!("teams/finance.yaml"),
        policy_file!("teams/support.yaml"),
    ];
    CompiledPolicySet::compile(Snapshot::from_files("examples/policies", files))
        .expect("the example policy set compiles")
});

const AGENTS: [&str; 3] = ["procurement-agent", "support-agent", "unknown-agent"];
const ENVIRONMENTS: [&str; 3] = ["prod", "staging", "dev"];

fn text(field: Option<&[u8]>) -> String {
    String::from_utf8_lossy(field.unwrap_or_default()).into_owned()
}

fn json(field: Option<&[u8]>) -> Option<Value> {
    serde_json::from_slice(field?).ok()
}

fuzz_target!(|data: &[u8]| {
    let [choice, rest @ ..] = data else {
        return;
    };
    let agent = AGENTS[usize::from(choice % 3)];
    let environment = ENVIRONMENTS[usize::from(choice / 3 % 3)];
    let mut fields = rest.split(|b| *b == 0);
    let request = if choice & 0x80 == 0 {
        let host = text(fields.next());
        let method = text(fields.next());
        let path = text(fields.next());
        let header = text(fields.next());
        Request::Http(HttpRequest {
            host,
            method,
            path,
            query: BTreeMap::new(),
            headers: BTreeMap::from([("x-approval-context".to_string(), header)]),
            body: json(fields.next()),
        })
    } else {
        Request::Mcp(McpCall {
            server: text(fields.next()),
            tool: text(fields.next()),
            arguments: json(fields.next()).unwrap_or(Value::Null),
        })
    };
    let set = &*SET;
    let action = set.action_from_request(set.identity(agent, environment), &request);
    let decision = set.decide(&action);
    assert_eq!(set.decide(&action), decision);
    assert_eq!(set.explain(&action).decision, decision);
});
