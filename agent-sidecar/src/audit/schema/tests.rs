use std::path::Path;

use super::*;

/// `docs/audit.schema.json` is what the code generates. Regenerate with
/// `UPDATE_SCHEMA=1 cargo test -p agent-sidecar --lib audit::schema`.
#[test]
fn published_schema_matches_the_record_type() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/audit.schema.json");
    let want = audit_schema_text();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date with the audit record types; regenerate it with:\n  UPDATE_SCHEMA=1 cargo test -p agent-sidecar --lib audit::schema\n(or `agent-sidecar audit schema > docs/audit.schema.json`) and commit it",
        path.display()
    );
}

#[test]
fn schema_names_every_top_level_field_in_line_order() {
    let s = audit_schema();
    let props: Vec<&String> = s["properties"].as_object().unwrap().keys().collect();
    assert_eq!(
        props,
        [
            "v",
            "seq",
            "id",
            "time",
            "prev",
            "kind",
            "phase",
            "agent",
            "trace",
            "action",
            "input",
            "policy",
            "oversight",
            "outcome",
            "retention",
            "detail"
        ]
    );
}
