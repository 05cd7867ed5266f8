//! The other `agent-sidecar audit` commands on a real log: keygen, prove
//! and check-proof, query, tail, schema.

mod audit_support;

use std::{fs, os::unix::fs::PermissionsExt};

use audit_support::*;

#[test]
fn keygen_writes_a_private_key_only_the_owner_reads_and_its_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("audit");
    let o = audit(&[
        "keygen",
        "--name",
        "example.test/audit/a",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let key = dir.path().join("audit.key");
    let vkey = dir.path().join("audit.vkey");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let signer =
        agent_sidecar::audit::NoteSigner::parse(&fs::read_to_string(&key).unwrap()).unwrap();
    let verifier =
        agent_sidecar::audit::NoteVerifier::parse(&fs::read_to_string(&vkey).unwrap()).unwrap();
    assert_eq!(signer.verifier(), verifier);
    assert!(
        fs::read_to_string(&vkey)
            .unwrap()
            .starts_with("example.test/audit/a+")
    );
    // Never overwritten.
    let o = audit(&[
        "keygen",
        "--name",
        "example.test/audit/a",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
}

#[test]
fn proofs_printed_by_prove_check_without_the_log() {
    let dir = log(0);
    append(dir.path(), 0..9);
    append(dir.path(), 9..25);
    let d = dir.path().to_str().unwrap();
    let key = vkey_file(dir.path());
    let key = key.to_str().unwrap();

    let o = audit(&["prove", d, "--seq", "5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let proof = dir.path().join("inclusion.json");
    fs::write(&proof, &o.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["type"], "inclusion");
    assert_eq!(v["tree_size"], 25);
    let o = audit(&["check-proof", proof.to_str().unwrap(), "--key", key]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("record 5 is leaf"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("signed by example.test/audit/agent-7"),
        "{}",
        stdout(&o)
    );

    // With the checkpoint given as a file.
    let cp = dir.path().join("checkpoint");
    let o = audit(&[
        "check-proof",
        proof.to_str().unwrap(),
        "--checkpoint",
        cp.to_str().unwrap(),
        "--key",
        key,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // A changed record in the proof does not check.
    let text = fs::read_to_string(&proof).unwrap();
    fs::write(&proof, text.replace("update_customer", "delete_customer")).unwrap();
    let o = audit(&["check-proof", proof.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).starts_with("INVALID"), "{}", stdout(&o));

    let o = audit(&["prove", d, "--from", "9", "--to", "25"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let consistency = dir.path().join("consistency.json");
    fs::write(&consistency, &o.stdout).unwrap();
    let o = audit(&["check-proof", consistency.to_str().unwrap(), "--key", key]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("extends the tree of 9 records"),
        "{}",
        stdout(&o)
    );

    let o = audit(&["prove", d, "--seq", "25"]);
    assert_eq!(o.status.code(), Some(2));
    let o = audit(&[
        "check-proof",
        dir.path().join("missing.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn query_filters_and_prints_tables_and_json() {
    let dir = log(40);
    let d = dir.path().to_str().unwrap();
    let o = audit(&["query", d, "--tier", "3", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 10);
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["policy"]["tier"], 3);
    }
    let o = audit(&[
        "query",
        d,
        "--agent",
        "agent-7",
        "--since",
        "1h",
        "--until",
        "now",
        "--action",
        "crm.update_customer",
        "--outcome",
        "success",
        "--limit",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("SEQ\tTIME\tKIND"), "{out}");
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(out.contains("crm.update_customer update_customer"), "{out}");
    let o = audit(&[
        "query",
        d,
        "--since",
        "2200-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(stdout(&o), "");
    // No later segment bounds the newest one: its tail after the last
    // index entry is read.
    assert!(
        stderr(&o).starts_with("0 records; read 1 of 1 segments"),
        "{}",
        stderr(&o)
    );
    let o = audit(&["query", d, "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("neither an RFC 3339 time"),
        "{}",
        stderr(&o)
    );
    let o = audit(&["query", d, "--kind", "coffee"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn tail_prints_the_last_records() {
    let dir = log(15);
    let o = audit(&["tail", dir.path().to_str().unwrap(), "-n", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let seqs: Vec<u64> = stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![12, 13, 14]);
}

#[test]
fn schema_prints_the_published_schema() {
    let o = audit(&["schema"]);
    let published = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/audit.schema.json"
    ))
    .unwrap();
    assert_eq!(stdout(&o), published);
}

#[test]
fn tail_follows_records_as_the_log_writes_them() {
    use std::io::{BufRead, BufReader};
    let dir = log(3);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .args([
            "audit",
            "tail",
            dir.path().to_str().unwrap(),
            "-f",
            "-n",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if tx.send(v["seq"].as_u64().unwrap()).is_err() {
                break;
            }
        }
    });
    let next =
        |rx: &std::sync::mpsc::Receiver<u64>| rx.recv_timeout(std::time::Duration::from_secs(10));
    assert_eq!(next(&rx), Ok(2));
    append(dir.path(), 3..6);
    let seqs: Vec<u64> = (0..3).map(|_| next(&rx).unwrap()).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    child.kill().unwrap();
    child.wait().unwrap();
}
