use std::path::Path;

use super::*;

/// `docs/policy.schema.json` is what the code generates. Regenerate with
/// `UPDATE_SCHEMA=1 cargo test -p agent-sidecar --lib policy::schema`.
#[test]
fn published_schema_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.schema.json");
    let want = policy_schema_text();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date with the policy document types; regenerate it with:\n  UPDATE_SCHEMA=1 cargo test -p agent-sidecar --lib policy::schema\n(or `agent-sidecar policy schema > docs/policy.schema.json`) and commit it",
        path.display()
    );
}

#[test]
fn schema_covers_every_kind_and_rejects_unknown_keys() {
    let s = policy_schema();
    assert_eq!(s["oneOf"].as_array().unwrap().len(), 5);
    let defs = s["$defs"].as_object().unwrap();
    for def in [
        "BaseDoc",
        "TeamDoc",
        "RoleDoc",
        "AgentDoc",
        "OverlayDoc",
        "RuleDecl",
        "ToolDecl",
        "FixtureFile",
    ] {
        assert!(defs.contains_key(def), "missing {def}");
    }
    assert_eq!(defs["TeamDoc"]["additionalProperties"], false);
    assert_eq!(defs["TeamTag"]["oneOf"][0]["const"], "team");
    assert_eq!(defs["Money"]["oneOf"][0]["type"], "number");
    let tier = serde_json::to_string(&defs["Tier"]).unwrap();
    assert!(tier.contains("deny"), "{tier}");
}
