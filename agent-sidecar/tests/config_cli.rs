//! `agent-sidecar config check|show` and `run --config` through the real
//! binary: exit codes, errors on stderr, where each value comes from.

use std::{path::PathBuf, process::Command};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agent-sidecar"));
    // The variables of the shell running the tests are not the test's.
    for (k, _) in std::env::vars() {
        if k.starts_with("AGENT_SIDECAR_") {
            c.env_remove(k);
        }
    }
    c
}

fn file(name: &str, text: &str) -> PathBuf {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn check_exits_0_for_a_valid_file_and_1_with_where_and_how() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/config/sidecar.yaml");
    let out = bin()
        .args(["config", "check"])
        .arg(&example)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));

    for (text, needle) in [
        (
            "agent-id: a\nkeep-pined: true\n",
            ":2:1: unknown key `keep-pined`: did you mean `keep-pinned`?",
        ),
        ("max-body-bytes: big\n", ":1:17: "),
        ("ca-key: key.pem\n", "--ca-cert"),
    ] {
        let f = file("bad.yaml", text);
        let out = bin()
            .args(["config", "check"])
            .arg(&f)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {stderr}");
        assert!(stderr.contains(needle), "{text:?}: {stderr}");
        assert!(stderr.contains("help: "), "{text:?}: {stderr}");
    }
}

#[test]
fn show_names_the_source_of_every_value() {
    let f = file(
        "sidecar.yaml",
        "agent-id: from-file\nenvironment: staging\n",
    );
    let out = bin()
        .args(["config", "show"])
        .env("AGENT_SIDECAR_CONFIG", &f)
        .env("AGENT_SIDECAR_ENVIRONMENT", "dev")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("from-file  # file"), "{stdout}");
    assert!(
        stdout.contains("dev  # env AGENT_SIDECAR_ENVIRONMENT"),
        "{stdout}"
    );
    assert!(stdout.contains("nxdomain  # default"), "{stdout}");
}

#[test]
fn run_refuses_a_bad_file_before_doing_anything() {
    let f = file("sidecar.yaml", "alow: [10.0.0.1:80]\n");
    let out = bin()
        .args(["run", "--config"])
        .arg(&f)
        .args(["--", "true"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did you mean `allow`?"), "{stderr}");
}

#[test]
fn the_schema_command_prints_the_published_schema() {
    let out = bin().args(["config", "schema"]).output().expect("run");
    let published = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/config.schema.json"),
    )
    .expect("docs/config.schema.json");
    assert_eq!(String::from_utf8_lossy(&out.stdout), published);
}
