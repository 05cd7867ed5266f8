//! `agent-sidecar fleet-ca init|issue` as a user runs it: the real binary
//! writes a CA and an agent identity that loads for mTLS, private keys are
//! 0600, nothing is overwritten silently and bad input is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use agent_sidecar::delegation::fleet_ca;
use agent_sidecar::delegation::identity::AgentIdentity;

fn sidecar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .args(args)
        .env_remove("AGENT_SIDECAR_CONFIG")
        .output()
        .expect("run agent-sidecar")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_and_issue_write_a_loadable_identity_with_private_keys_0600() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ids = dir.path().join("ids");
    let ca_s = ca.to_str().unwrap();
    let out = sidecar(&[
        "fleet-ca",
        "init",
        "--trust-domain",
        "fleet.example",
        "--out",
        ca_s,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&ca.join(fleet_ca::CA_KEY)), 0o600);
    let ca_key_before = std::fs::read(ca.join(fleet_ca::CA_KEY)).unwrap();

    // A second init over the same directory is refused and leaves the key.
    let again = sidecar(&[
        "fleet-ca",
        "init",
        "--trust-domain",
        "other.example",
        "--out",
        ca_s,
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("fleet-ca.key"));
    assert_eq!(
        std::fs::read(ca.join(fleet_ca::CA_KEY)).unwrap(),
        ca_key_before
    );

    let out = sidecar(&[
        "fleet-ca",
        "issue",
        "--ca",
        ca_s,
        "--team",
        "research",
        "--agent",
        "b",
        "--ttl",
        "1h",
        "--out",
        ids.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["spiffe_id"],
        "spiffe://fleet.example/team/research/agent/b"
    );
    assert_eq!(report["ttl_seconds"], 3600);
    assert_eq!(mode(&ids.join("b.key")), 0o600);
    let id = AgentIdentity::load(
        &ids.join("b.pem"),
        &ids.join("b.key"),
        &ca.join(fleet_ca::CA_CERT),
    )
    .unwrap();
    assert_eq!(id.spiffe_id, "spiffe://fleet.example/team/research/agent/b");
    assert!(!id.expired());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((id.not_after - now - 3600).abs() < 120, "ttl honoured");
}

#[test]
fn issue_refuses_bad_names_missing_ca_and_bad_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ca_s = ca.to_str().unwrap();
    let ids = dir.path().join("ids");
    let ids_s = ids.to_str().unwrap();
    // No CA yet: refused, naming the missing file.
    let out = sidecar(&[
        "fleet-ca", "issue", "--ca", ca_s, "--team", "t", "--agent", "a", "--out", ids_s,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("trust-domain"));
    assert!(
        sidecar(&[
            "fleet-ca",
            "init",
            "--trust-domain",
            "fleet.example",
            "--out",
            ca_s
        ])
        .status
        .success()
    );
    // A name that would smuggle another path segment into the SPIFFE ID.
    for (team, agent) in [
        ("t/../admin", "a"),
        ("t", "A"),
        ("t", "a/agent/root"),
        ("", "a"),
    ] {
        let out = sidecar(&[
            "fleet-ca", "issue", "--ca", ca_s, "--team", team, "--agent", agent, "--out", ids_s,
        ]);
        assert_eq!(out.status.code(), Some(2), "team {team:?} agent {agent:?}");
    }
    let out = sidecar(&[
        "fleet-ca", "issue", "--ca", ca_s, "--team", "t", "--agent", "a", "--ttl", "soon", "--out",
        ids_s,
    ]);
    assert!(!out.status.success());
    assert!(!ids.join("a.key").exists());
}

#[test]
fn run_refuses_to_start_with_an_expired_or_incomplete_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ids = dir.path().join("ids");
    let (ca_s, ids_s) = (ca.to_str().unwrap(), ids.to_str().unwrap());
    assert!(
        sidecar(&[
            "fleet-ca",
            "init",
            "--trust-domain",
            "fleet.example",
            "--out",
            ca_s
        ])
        .status
        .success()
    );
    let out = sidecar(&[
        "fleet-ca", "issue", "--ca", ca_s, "--team", "t", "--agent", "a", "--ttl", "1s", "--out",
        ids_s,
    ]);
    assert!(out.status.success());
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/policies");
    let state = dir.path().join("state");
    let cert = ids.join("a.pem");
    let key = ids.join("a.key");
    let ca_cert = ca.join(fleet_ca::CA_CERT);
    let out = sidecar(&[
        "run",
        "--agent-id",
        "support-agent",
        "--policy-dir",
        policies,
        "--state-dir",
        state.to_str().unwrap(),
        "--agent-identity-cert",
        cert.to_str().unwrap(),
        "--agent-identity-key",
        key.to_str().unwrap(),
        "--fleet-ca-cert",
        ca_cert.to_str().unwrap(),
        "--",
        "true",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--agent-identity-cert") && stderr.contains("fleet-ca issue"),
        "{stderr}"
    );
    // The certificate without its key or the fleet CA is a usage error.
    let out = sidecar(&[
        "run",
        "--agent-id",
        "support-agent",
        "--policy-dir",
        policies,
        "--agent-identity-cert",
        cert.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--agent-identity-key"), "{stderr}");
}
