use std::fs;

use super::*;
use crate::audit::{
    store::segment,
    test_support::{entry, open, signer},
};

/// A closed log of `n` records with a checkpoint at close.
fn log(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..n {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    dir
}

fn check(dir: &Path) -> VerifyReport {
    verify(
        dir,
        &VerifyOptions {
            key: Some(signer().verifier()),
            witnesses: Vec::new(),
        },
    )
    .unwrap()
}

fn segment_lines(dir: &Path) -> (PathBuf, Vec<String>) {
    let seg = segment::list_segments(dir).unwrap().pop().unwrap();
    let text = fs::read_to_string(&seg.records).unwrap();
    (seg.records, text.lines().map(String::from).collect())
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

#[test]
fn a_clean_log_is_valid() {
    let dir = log(12);
    let r = check(dir.path());
    assert!(r.valid());
    assert_eq!((r.records, r.size, r.checkpointed), (12, 12, 12));
    assert_eq!(r.key, KeySource::Given);
}

#[test]
fn an_edit_is_named_at_its_record() {
    let dir = log(12);
    let (path, mut lines) = segment_lines(dir.path());
    lines[7] = lines[7].replace("\"tier\":4", "\"tier\":1");
    write_lines(&path, &lines);
    let p = check(dir.path()).record_problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Edited, Some(7)), "{p}");
    assert!(p.location.contains("line 8"), "{p}");
}

#[test]
fn without_the_tree_files_an_edit_is_found_through_the_chain() {
    let dir = log(12);
    fs::remove_dir_all(dir.path().join(TREE_DIR)).unwrap();
    let (path, mut lines) = segment_lines(dir.path());
    lines[4] = lines[4].replace("agent-1", "agent-2");
    write_lines(&path, &lines);
    let r = check(dir.path());
    let p = r.record_problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Edited, Some(4)), "{p}");
}

#[test]
fn an_edit_of_the_last_record_breaks_the_checkpoint() {
    let dir = log(6);
    fs::remove_dir_all(dir.path().join(TREE_DIR)).unwrap();
    let (path, mut lines) = segment_lines(dir.path());
    lines[5] = lines[5].replace("\"success\"", "\"failure\"");
    write_lines(&path, &lines);
    let r = check(dir.path());
    assert!(r.record_problem.is_none());
    let p = r.checkpoint_problem.unwrap();
    assert_eq!(p.kind, ProblemKind::InconsistentCheckpoint, "{p}");
}

#[test]
fn deletions_insertions_swaps_and_cuts_are_named() {
    let dir = log(12);
    let (path, lines) = segment_lines(dir.path());

    let mut deleted = lines.clone();
    deleted.remove(5);
    write_lines(&path, &deleted);
    let p = check(dir.path()).record_problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Deleted, Some(5)), "{p}");

    let mut inserted = lines.clone();
    inserted.insert(9, lines[2].clone());
    write_lines(&path, &inserted);
    let p = check(dir.path()).record_problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Inserted, Some(9)), "{p}");

    let mut swapped = lines.clone();
    swapped.swap(3, 4);
    write_lines(&path, &swapped);
    let p = check(dir.path()).record_problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Reordered, Some(3)), "{p}");

    write_lines(&path, &lines[..10]);
    let p = check(dir.path()).record_problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Truncated, Some(10)), "{p}");

    write_lines(&path, &lines);
    assert!(check(dir.path()).valid());
}

#[test]
fn a_forged_or_forked_checkpoint_is_named() {
    let dir = log(8);
    let history = dir.path().join(crate::audit::checkpoint::HISTORY_FILE);
    let good = fs::read_to_string(&history).unwrap();
    // Forged: the size changed, the signature left as it was.
    fs::write(&history, good.replacen("\n8\n", "\n7\n", 1)).unwrap();
    let p = check(dir.path()).checkpoint_problem.unwrap();
    assert_eq!(p.kind, ProblemKind::ForgedCheckpoint, "{p}");
    assert!(p.location.starts_with("checkpoints line 1"), "{p}");
    // Forked: validly signed, over other records of the same size.
    let fork_log = tempfile::tempdir().unwrap();
    let l = open(fork_log.path());
    for i in 100..108 {
        l.append(entry(i)).unwrap();
    }
    l.close().unwrap();
    let forked =
        fs::read_to_string(fork_log.path().join(crate::audit::checkpoint::HISTORY_FILE)).unwrap();
    fs::write(&history, format!("{good}{forked}")).unwrap();
    let p = check(dir.path()).checkpoint_problem.unwrap();
    assert_eq!(p.kind, ProblemKind::InconsistentCheckpoint, "{p}");
    assert!(p.location.starts_with("checkpoints line 7"), "{p}");
}

#[test]
fn another_key_is_a_forgery_and_no_key_a_warning() {
    let dir = log(3);
    let other =
        crate::audit::checkpoint::NoteSigner::from_seed("example.test/audit/agent-1", &[9; 32])
            .unwrap();
    let r = verify(
        dir.path(),
        &VerifyOptions {
            key: Some(other.verifier()),
            witnesses: Vec::new(),
        },
    )
    .unwrap();
    assert_eq!(
        r.checkpoint_problem.unwrap().kind,
        ProblemKind::ForgedCheckpoint
    );
    let r = verify(dir.path(), &VerifyOptions::default()).unwrap();
    assert!(r.valid());
    assert_eq!(r.key, KeySource::Log);
    assert!(r.warnings.iter().any(|w| w.contains("--key")));
}

#[test]
fn a_torn_last_line_after_the_last_checkpoint_is_a_warning() {
    let dir = log(4);
    let (path, _) = segment_lines(dir.path());
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, b"{\"v\":1,\"seq\":4,\"id\"").unwrap();
    let r = check(dir.path());
    assert!(r.valid(), "{:?}", r.problems().collect::<Vec<_>>());
    assert!(r.warnings.iter().any(|w| w.contains("torn last line")));
}

#[test]
fn not_a_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        verify(dir.path(), &VerifyOptions::default()),
        Err(VerifyError::NotALog { .. })
    ));
}
