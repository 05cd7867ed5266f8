//! `deploy/`: the Prometheus alert rules pass `promtool check rules` and
//! their unit tests (`promtool test rules`), every query of the Grafana
//! dashboard is PromQL promtool accepts, and every series a rule or a
//! panel names is one `docs/metrics.md` lists.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Debian's promtool (package `prometheus`, installed by `cargo xtask
/// setup`). Missing is a failure.
fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool: {e}: install Debian's `prometheus` package (cargo xtask setup)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// The `agent_sidecar_*` names in `text`, without histogram suffixes.
fn series(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("agent_sidecar_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(n) = name.strip_suffix(suffix)
                && n.ends_with("_duration_seconds")
            {
                name = n;
            }
        }
        out.insert(name.to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = root().join("deploy/prometheus");
    let out = promtool(&["check", "rules", "agent-sidecar.rules.yml"], &dir);
    assert!(out.contains("SUCCESS: 15 rules found"), "{out}");
    let out = promtool(&["test", "rules", "agent-sidecar.rules.test.yml"], &dir);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn dashboard_queries_are_promql_and_name_documented_series() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/agent-sidecar.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().replace("$agent_id", ".*"));
        }
    }
    assert!(exprs.len() >= 15, "{exprs:?}");
    // promtool parses each query as the expression of a recording rule.
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:panel_{i}\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        ));
    }
    std::fs::write(dir.path().join("dashboard.rules.yml"), rules).unwrap();
    let out = promtool(&["check", "rules", "dashboard.rules.yml"], dir.path());
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{out}"
    );

    let documented = series(&std::fs::read_to_string(root().join("docs/metrics.md")).unwrap());
    let rules =
        std::fs::read_to_string(root().join("deploy/prometheus/agent-sidecar.rules.yml")).unwrap();
    let used: BTreeSet<String> = series(&text).union(&series(&rules)).cloned().collect();
    assert!(used.len() >= 20, "{used:?}");
    let unknown: Vec<&String> = used.difference(&documented).collect();
    assert!(unknown.is_empty(), "not in docs/metrics.md: {unknown:?}");
}
