//! The named tier-policy fixtures: each a YAML file under
//! `test-support/fixtures/policies/<set>/<file>.yaml`, named `<set>/<file>`
//! and written once, compiled into this crate so that unit tests,
//! integration tests and benchmarks read the same text from anywhere.
//!
//! Fixtures may hold placeholders `@NAME@` (a port, a host, an agent id)
//! that [`render`] and [`write_set`] fill in. The sets:
//!
//! - `acme`: `base`, `team`, `agent`: an ERP tool with payments, a CRM MCP
//!   tool and a few rules, a team and an agent of it (the policy unit
//!   tests');
//! - `erp-gateway`: `base`, `buyer`: the in-process gateway's tool API
//!   (REST `erp`, MCP `crm` and `crm-live` on one host), placeholders
//!   `@HOST@`, `@PORT@`, `@STREAM_PATH@`;
//! - `crm-e2e`: `base`, `agent`: the end-to-end gateway tests under
//!   `agent-sidecar run` (REST `billing`, MCP `crm`), placeholders
//!   `@CONTROL@` (an egress address) and `@AGENT@` (the agent id);
//! - `pay-e2e`: `base`, `agent`: one REST tool (`pay`) with an action at
//!   every tier (list and verify 1, update 2, pay 3, export 4, delete
//!   deny) and a redaction (IBAN hashed, reference kept), for the audit
//!   trail's crash and redaction tests under `agent-sidecar run`;
//!   placeholder `@AGENT@`.

use std::path::Path;

/// `acme/base`: the base of the policy unit tests.
pub const ACME_BASE: &str = include_str!("../fixtures/policies/acme/base.yaml");
/// `acme/team`: team `fin` under [`ACME_BASE`].
pub const ACME_TEAM: &str = include_str!("../fixtures/policies/acme/team.yaml");
/// `acme/agent`: agent `bot` of [`ACME_TEAM`].
pub const ACME_AGENT: &str = include_str!("../fixtures/policies/acme/agent.yaml");

/// Every fixture, by name.
const FIXTURES: &[(&str, &str)] = &[
    ("acme/base", ACME_BASE),
    ("acme/team", ACME_TEAM),
    ("acme/agent", ACME_AGENT),
    (
        "erp-gateway/base",
        include_str!("../fixtures/policies/erp-gateway/base.yaml"),
    ),
    (
        "erp-gateway/buyer",
        include_str!("../fixtures/policies/erp-gateway/buyer.yaml"),
    ),
    (
        "crm-e2e/base",
        include_str!("../fixtures/policies/crm-e2e/base.yaml"),
    ),
    (
        "crm-e2e/agent",
        include_str!("../fixtures/policies/crm-e2e/agent.yaml"),
    ),
    (
        "pay-e2e/base",
        include_str!("../fixtures/policies/pay-e2e/base.yaml"),
    ),
    (
        "pay-e2e/agent",
        include_str!("../fixtures/policies/pay-e2e/agent.yaml"),
    ),
];

/// The text of fixture `name` (`<set>/<file>`), placeholders unfilled.
/// Panics, listing the fixtures, when there is none of that name.
pub fn fixture(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| {
            let known: Vec<&str> = FIXTURES.iter().map(|(n, _)| *n).collect();
            panic!("no policy fixture {name:?}; there are {known:?}")
        })
}

/// Fixture `name` with each `@KEY@` of `vars` replaced by its value.
/// Panics when a placeholder is left unfilled.
pub fn render(name: &str, vars: &[(&str, &str)]) -> String {
    let text = fill(fixture(name), vars);
    if let Some(left) = placeholder(&text) {
        panic!("policy fixture {name:?}: placeholder @{left}@ not filled");
    }
    text
}

/// Writes every fixture of `set` into `dir` (created if missing) as
/// `<file>.yaml`, rendered with `vars`. Panics when a placeholder is left
/// unfilled or a var fills none.
pub fn write_set(set: &str, dir: &Path, vars: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("policy dir");
    let prefix = format!("{set}/");
    let files: Vec<(&str, &str)> = FIXTURES
        .iter()
        .filter_map(|(n, t)| n.strip_prefix(&prefix).map(|f| (f, *t)))
        .collect();
    assert!(!files.is_empty(), "no policy fixture set {set:?}");
    for (key, _) in vars {
        let token = format!("@{key}@");
        assert!(
            files.iter().any(|(_, t)| t.contains(&token)),
            "policy fixture set {set:?} has no placeholder {token}"
        );
    }
    for (file, _) in files {
        let text = render(&format!("{set}/{file}"), vars);
        std::fs::write(dir.join(format!("{file}.yaml")), text).expect("write policy fixture");
    }
}

fn fill(text: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(text.to_owned(), |text, (key, value)| {
        text.replace(&format!("@{key}@"), value)
    })
}

/// The first `@KEY@` (uppercase letters and `_`) left in `text`.
fn placeholder(text: &str) -> Option<&str> {
    text.match_indices('@').find_map(|(at, _)| {
        let rest = &text[at + 1..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || *b == b'_')
            .count();
        (len > 0 && rest[len..].starts_with('@')).then(|| &rest[..len])
    })
}
