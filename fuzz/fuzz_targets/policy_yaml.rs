//! Fuzzes the tier policy compiler on hostile YAML: up to four documents
//! (a base, an agent, an environment overlay and a team, separated by NUL
//! bytes) are parsed, linked, tightening-checked and compiled; every error
//! is rendered as the CLI prints it (file, line, column, snippet). A set
//! that compiles decides a few requests, `explain` must reach the same
//! decision as `decide`, and `diff` against itself must be empty.
//!
//! Seeds: `fuzz/corpus/policy_yaml/` (the example and fixture policy sets).
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run policy_yaml corpus/policy_yaml
//! ```
#![no_main]

use agent_sidecar::policy::{
    CompiledPolicySet, HttpRequest, McpCall, Request, Snapshot, diff::diff, source::SourceFile,
};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const PATHS: [&str; 4] = [
    "base.yaml",
    "agents/agent.yaml",
    "overlays/prod.yaml",
    "teams/team.yaml",
];

fuzz_target!(|data: &[u8]| {
    let files: Vec<SourceFile> = data
        .split(|b| *b == 0)
        .zip(PATHS)
        .filter(|(text, _)| !text.is_empty())
        .map(|(text, path)| SourceFile {
            path: path.to_string(),
            text: String::from_utf8_lossy(text).into_owned(),
        })
        .collect();
    let set = match CompiledPolicySet::compile(Snapshot::from_files("fuzz", files)) {
        Ok(set) => set,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let _ = set.summary();
    assert!(diff(&set, &set).is_empty());
    let requests = [
        Request::Mcp(McpCall {
            server: "crm".into(),
            tool: "refund".into(),
            arguments: json!({"amount": 150, "customer_ids": [1, 2, 3]}),
        }),
        Request::Http(HttpRequest {
            host: "erp.acme.internal".into(),
            method: "POST".into(),
            path: "/v1/payments?limit=500".into(),
            body: Some(json!({"amount": 20000, "currency": "EUR"})),
            ..HttpRequest::default()
        }),
    ];
    for agent in ["agent", "demo-agent", "procurement-agent"] {
        for env in ["prod", "dev"] {
            for request in &requests {
                let action = set.action_from_request(set.identity(agent, env), request);
                let decision = set.decide(&action);
                assert_eq!(set.explain(&action).decision, decision);
            }
        }
    }
});
