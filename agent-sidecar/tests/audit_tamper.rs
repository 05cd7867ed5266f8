//! `agent-sidecar audit verify` on logs someone changed: every edit,
//! deletion, insertion, reordering, truncation, forged and forked
//! checkpoint is found, at the right record, with exit code 1.

mod audit_support;

use std::fs;

use audit_support::*;

/// Runs verify with the trusted key; returns (exit code, stdout).
fn verify(dir: &std::path::Path) -> (i32, String) {
    let key = vkey_file(dir);
    let o = audit(&[
        "verify",
        dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    (
        o.status.code().unwrap_or(-1),
        format!("{}{}", stdout(&o), stderr(&o)),
    )
}

fn assert_first_bad(dir: &std::path::Path, kind: &str, record: Option<u64>) {
    let (code, out) = verify(dir);
    assert_eq!(code, 1, "exit code 1 (tampered):\n{out}");
    assert!(out.contains("TAMPERED"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("FIRST BAD"))
        .unwrap_or_else(|| panic!("no FIRST BAD line:\n{out}"));
    assert!(line.starts_with(&format!("FIRST BAD {kind}:")), "{line}");
    if let Some(seq) = record {
        assert!(
            line.contains(&format!("record {seq} (")),
            "want record {seq}: {line}"
        );
    }
}

#[test]
fn an_untouched_log_is_valid() {
    let dir = log(20);
    let (code, out) = verify(dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("VALID") && out.contains("tree size 20"),
        "{out}"
    );
    let o = audit(&["verify", dir.path().to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["key"], "log");
}

#[test]
fn an_edited_record_is_named() {
    let dir = log(20);
    let (path, mut lines) = segment(dir.path());
    lines[11] = lines[11].replace("\"status\":\"success\"", "\"status\":\"refused\"");
    write_lines(&path, &lines);
    assert_first_bad(dir.path(), "edited", Some(11));
}

#[test]
fn a_deleted_record_is_named() {
    let dir = log(20);
    let (path, mut lines) = segment(dir.path());
    lines.remove(6);
    write_lines(&path, &lines);
    assert_first_bad(dir.path(), "deleted", Some(6));
}

#[test]
fn an_inserted_record_is_named() {
    let dir = log(20);
    let (path, mut lines) = segment(dir.path());
    // A replayed record.
    let copy = lines[3].clone();
    lines.insert(14, copy);
    write_lines(&path, &lines);
    assert_first_bad(dir.path(), "inserted", Some(14));
    // A forged one with the next number: its hash is not the stored leaf.
    let (path, mut lines) = segment(dir.path());
    lines.remove(14);
    let forged = lines[14].replace("\"tier\":3", "\"tier\":1");
    lines.insert(14, forged);
    write_lines(&path, &lines);
    assert_first_bad(dir.path(), "edited", Some(14));
}

#[test]
fn swapped_records_are_named() {
    let dir = log(20);
    let (path, mut lines) = segment(dir.path());
    lines.swap(8, 9);
    write_lines(&path, &lines);
    assert_first_bad(dir.path(), "reordered", Some(8));
}

#[test]
fn a_cut_tail_is_named() {
    let dir = log(20);
    let (path, lines) = segment(dir.path());
    write_lines(&path, &lines[..17]);
    assert_first_bad(dir.path(), "truncated", Some(17));
    // The tail and the tree files cut alike: the checkpoint still counts.
    fs::remove_dir_all(dir.path().join("tree")).unwrap();
    assert_first_bad(dir.path(), "truncated", Some(17));
}

#[test]
fn a_forged_checkpoint_is_named() {
    let dir = log(20);
    let path = dir.path().join("checkpoints");
    let text = fs::read_to_string(&path).unwrap();
    let root_line = text.lines().nth(2).unwrap().to_string();
    let mut root = agent_sidecar::audit::hash::Hash::from_base64(&root_line).unwrap();
    root.0[0] ^= 0x80;
    fs::write(&path, text.replace(&root_line, &root.to_base64())).unwrap();
    assert_first_bad(dir.path(), "forged checkpoint", None);
    let (_, out) = verify(dir.path());
    assert!(out.contains("checkpoints line 1"), "{out}");
}

#[test]
fn a_forked_checkpoint_is_named() {
    let dir = log(20);
    // The same key signed a checkpoint over other records of size 20.
    let other = log(0);
    append(other.path(), 100..120);
    let fork = fs::read_to_string(other.path().join("checkpoints")).unwrap();
    let path = dir.path().join("checkpoints");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(&fork);
    fs::write(&path, text).unwrap();
    assert_first_bad(dir.path(), "inconsistent checkpoint", None);
    let (_, out) = verify(dir.path());
    assert!(out.contains("checkpoints line 7"), "{out}");
}

#[test]
fn a_replaced_log_does_not_match_its_witness() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let witness = parent.path().join("witness");
    let mut c = config(&dir);
    c.sinks
        .push(Box::new(agent_sidecar::audit::FileSink::new(&witness)));
    let log = agent_sidecar::audit::AuditLog::open(c).unwrap();
    for i in 0..10 {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    // Rewritten whole with the key: consistent in itself.
    fs::remove_dir_all(&dir).unwrap();
    append(&dir, 500..510);
    let key = vkey_file(parent.path());
    let o = audit(&[
        "verify",
        dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = audit(&[
        "verify",
        dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--witness",
        witness.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("FIRST BAD inconsistent checkpoint: witness"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn unreadable_input_exits_2() {
    let empty = tempfile::tempdir().unwrap();
    let o = audit(&["verify", empty.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not an audit log directory"),
        "{}",
        stderr(&o)
    );
    let dir = log(2);
    let o = audit(&["verify", dir.path().to_str().unwrap(), "--key", "not-a-key"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
