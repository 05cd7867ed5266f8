use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::PermissionsExt,
};

use super::*;
use crate::approvals::model::{ApprovalState, UnixMillis, tests::sample_request};

fn record(key: &str) -> PendingApproval {
    PendingApproval::new(key.into(), sample_request(), UnixMillis(1_000))
}

#[test]
fn appended_records_replay_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut j, replay) = Journal::open(dir.path()).expect("opens");
    assert!(replay.records.is_empty() && j.is_empty());
    let a = record("a");
    let mut a2 = a.clone();
    a2.state = ApprovalState::Expired { at: UnixMillis(2) };
    j.append(&a).expect("append");
    j.append(&a2).expect("append");
    drop(j);
    let (j, replay) = Journal::open(dir.path()).expect("reopens");
    assert_eq!(replay.records, vec![a, a2]);
    assert_eq!(replay.torn_tail, None);
    assert_eq!(j.len(), fs::metadata(j.path()).expect("stat").len());
}

#[test]
fn journal_is_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (j, _) = Journal::open(&dir.path().join("sub")).expect("opens");
    let mode = fs::metadata(j.path()).expect("stat").permissions().mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

#[test]
fn torn_last_line_is_reported_and_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut j, _) = Journal::open(dir.path()).expect("opens");
    let a = record("a");
    j.append(&a).expect("append");
    let path = j.path().to_path_buf();
    drop(j);
    let full = serde_json::to_string(&record("b")).expect("json");
    let torn = &full[..full.len() / 2];
    OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(torn.as_bytes()))
        .expect("tear");
    let (mut j, replay) = Journal::open(dir.path()).expect("recovers");
    assert_eq!(replay.records, vec![a.clone()]);
    assert_eq!(
        replay.torn_tail,
        Some(TornTail {
            line: 2,
            bytes: torn.len() as u64
        })
    );
    let c = record("c");
    j.append(&c).expect("append after recovery");
    drop(j);
    let (_, replay) = Journal::open(dir.path()).expect("reopens");
    assert_eq!(replay.records, vec![a, c]);
    assert_eq!(replay.torn_tail, None);
}

#[test]
fn corrupt_middle_line_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(FILE_NAME);
    let good = serde_json::to_string(&record("a")).expect("json");
    fs::write(&path, format!("{good}\n{{\"id\": 3\n{good}\n")).expect("write");
    let err = Journal::open(dir.path()).expect_err("corrupt");
    assert!(
        matches!(err, JournalError::Corrupt { line: 2, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}:2:", path.display())), "{msg}");
    assert_eq!(
        fs::read_to_string(&path).expect("read").lines().count(),
        3,
        "nothing dropped"
    );
}

#[test]
fn compaction_replaces_the_journal_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut j, _) = Journal::open(dir.path()).expect("opens");
    let records: Vec<_> = (0..5).map(|i| record(&format!("k{i}"))).collect();
    for r in &records {
        j.append(r).expect("append");
    }
    let before = j.len();
    j.compact(&records[3..]).expect("compacts");
    assert!(j.len() < before);
    let extra = record("late");
    j.append(&extra).expect("append after compaction");
    assert!(!dir.path().join(COMPACT_NAME).exists());
    drop(j);
    let (_, replay) = Journal::open(dir.path()).expect("reopens");
    let mut expected = records[3..].to_vec();
    expected.push(extra);
    assert_eq!(replay.records, expected);
}
