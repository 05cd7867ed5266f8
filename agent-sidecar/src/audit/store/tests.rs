use std::{
    fs,
    io::Write,
    time::{Duration, Instant},
};

use super::*;
use crate::audit::{
    checkpoint::{HISTORY_FILE, SignedCheckpoint, split_notes},
    hash::leaf_hash,
    record::{AuditRecord, RecordKind},
    test_support::{config, entry, open, signer},
    tree::CompactRange,
    verify::{VerifyOptions, verify},
};

fn lines(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for seg in segment::list_segments(dir).unwrap() {
        if !seg.present {
            continue;
        }
        for line in fs::read(&seg.records).unwrap().split(|&b| b == b'\n') {
            if !line.is_empty() {
                out.push(line.to_vec());
            }
        }
    }
    out
}

fn records(dir: &Path) -> Vec<AuditRecord> {
    lines(dir)
        .iter()
        .map(|l| AuditRecord::parse(l).unwrap())
        .collect()
}

fn assert_valid(dir: &Path) -> crate::audit::verify::VerifyReport {
    let opts = VerifyOptions {
        key: Some(signer().verifier()),
        witnesses: Vec::new(),
    };
    let report = verify(dir, &opts).unwrap();
    assert!(
        report.valid(),
        "{:?}",
        report.problems().collect::<Vec<_>>()
    );
    report
}

#[test]
fn appends_are_numbered_chained_hashed_and_checkpointed_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..100 {
        let a = log.append(entry(i)).unwrap();
        assert_eq!(a.seq, i);
        assert_eq!(a.id.len(), 36);
    }
    log.close().unwrap();
    assert!(matches!(
        log.append(entry(0)),
        Err(AuditError::Closed { .. })
    ));
    let lines = lines(dir.path());
    assert_eq!(lines.len(), 100);
    let mut range = CompactRange::new();
    let mut prev = crate::audit::hash::Hash::default();
    let mut last_time = crate::audit::time::Timestamp(0);
    for (i, line) in lines.iter().enumerate() {
        let r = AuditRecord::parse(line).unwrap();
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.prev, prev);
        assert!(r.time >= last_time);
        assert_eq!(r.retention.class, "standard");
        assert!(r.retention.expires_at > r.time);
        assert_eq!(r.to_line(), *line, "canonical");
        prev = leaf_hash(line);
        last_time = r.time;
        range.push(prev, |_, _| {});
    }
    let history = fs::read_to_string(dir.path().join(HISTORY_FILE)).unwrap();
    let notes = split_notes(&history);
    let last = SignedCheckpoint::open(&notes.last().unwrap().1, &signer().verifier()).unwrap();
    assert_eq!(last.checkpoint.size, 100);
    assert_eq!(last.checkpoint.root, range.root());
    assert_eq!(
        fs::read_to_string(dir.path().join(VKEY_FILE))
            .unwrap()
            .trim(),
        signer().verifier().to_text()
    );
    let report = assert_valid(dir.path());
    assert_eq!(report.size, 100);
    assert_eq!(report.checkpointed, 100);
}

#[tokio::test]
async fn append_durable_returns_once_fsynced() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.fsync = FsyncPolicy::Interval(Duration::from_secs(3600));
    let log = AuditLog::open(c).unwrap();
    for i in 0..10 {
        log.append(entry(i)).unwrap();
    }
    let started = Instant::now();
    let a = log.append_durable(entry(10)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not the hour-long interval"
    );
    let (written, durable) = log.progress();
    assert!(durable > a.seq && written >= durable);
    let w = log.append_written(entry(11)).await.unwrap();
    assert!(log.progress().0 > w.seq);
    let c = log.counters();
    assert_eq!(c.appended, 12);
    assert!(c.fsyncs >= 1);
    assert!(c.durable >= 11);
    log.close().unwrap();
    let c = log.counters();
    assert_eq!((c.written, c.durable), (12, 12));
    assert!(c.bytes > 12 * 500);
    assert_eq!(c.checkpoints, 1);
}

#[test]
fn restart_continues_the_sequence_the_chain_and_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..30 {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let log = open(dir.path());
    let a = log.append(entry(30)).unwrap();
    assert_eq!(a.seq, 30);
    for i in 31..45 {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    let rs = records(dir.path());
    assert_eq!(rs.len(), 45);
    assert!(rs.iter().all(|r| r.kind == RecordKind::ToolCall));
    let report = assert_valid(dir.path());
    assert_eq!((report.size, report.checkpoints), (45, 2 + 1));
}

#[test]
fn a_torn_last_line_is_cut_logged_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..5 {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let seg = segment::list_segments(dir.path()).unwrap().pop().unwrap();
    let whole = fs::read(&seg.records).unwrap();
    // Half of a sixth record, as a crash mid-write leaves it.
    let sixth = fs::read(&seg.records).unwrap();
    let first_line = sixth.split(|&b| b == b'\n').next().unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&seg.records)
        .unwrap()
        .write_all(&first_line[..first_line.len() / 2])
        .unwrap();
    let log = open(dir.path());
    assert_eq!(log.counters().repairs, 1);
    let a = log.append(entry(99)).unwrap();
    assert_eq!(a.seq, 6, "seq 5 is the repair record");
    log.close().unwrap();
    let rs = records(dir.path());
    assert_eq!(rs.len(), 7);
    assert_eq!(rs[5].kind, RecordKind::LogRepaired);
    let d = rs[5].detail.as_ref().unwrap();
    assert_eq!(d["offset"].as_u64(), Some(whole.len() as u64));
    assert_eq!(
        d["bytes_dropped"].as_u64(),
        Some(first_line.len() as u64 / 2)
    );
    assert_valid(dir.path());
}

#[test]
fn a_whole_last_record_without_its_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..3 {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let seg = segment::list_segments(dir.path()).unwrap().pop().unwrap();
    let mut bytes = fs::read(&seg.records).unwrap();
    bytes.pop();
    fs::write(&seg.records, &bytes).unwrap();
    let log = open(dir.path());
    assert_eq!(log.counters().repairs, 0);
    assert_eq!(log.append(entry(3)).unwrap().seq, 3);
    log.close().unwrap();
    assert_eq!(records(dir.path()).len(), 4);
    assert_valid(dir.path());
}

#[test]
fn a_lost_tree_tail_is_rehashed_and_a_long_one_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..20 {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let level0 = dir.path().join(TREE_DIR).join("level-00");
    fs::OpenOptions::new()
        .write(true)
        .open(&level0)
        .unwrap()
        .set_len(32 * 11)
        .unwrap();
    let log = open(dir.path());
    log.append(entry(20)).unwrap();
    log.close().unwrap();
    drop(log);
    assert_eq!(fs::metadata(&level0).unwrap().len(), 32 * 21);
    assert_valid(dir.path());
}

#[test]
fn segments_rotate_by_size_and_the_tree_spans_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.segment_max_bytes = 8 << 10;
    c.index_every_bytes = 1 << 10;
    let log = AuditLog::open(c).unwrap();
    for i in 0..200 {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    let segs = segment::list_segments(dir.path()).unwrap();
    assert!(segs.len() > 5, "{}", segs.len());
    for pair in segs.windows(2) {
        assert!(pair[0].first_seq < pair[1].first_seq);
        assert!(pair[0].first_time <= pair[1].first_time);
        let meta = segment::read_meta(&pair[0].meta).unwrap().unwrap();
        assert_eq!(meta.last_seq + 1, pair[1].first_seq);
        let idx = segment::read_index(&pair[0].index).unwrap();
        assert!(idx.len() >= 4 && idx[0].offset == 0 && idx[0].seq == pair[0].first_seq);
    }
    assert_eq!(log.counters().segments_sealed as usize, segs.len() - 1);
    assert_eq!(assert_valid(dir.path()).size, 200);
}

#[test]
fn retention_deletes_whole_expired_segments_and_the_tree_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.segment_max_bytes = 4 << 10;
    c.retention
        .classes
        .insert("brief".into(), Duration::from_millis(1));
    c.retention_sweep_interval = Duration::from_millis(20);
    let log = AuditLog::open(c).unwrap();
    for i in 0..60 {
        let mut e = entry(i);
        // The first 40 expire at once, the rest are kept.
        if i < 40 {
            e.retention_class = Some("brief".into());
        }
        log.append(e).unwrap();
    }
    log.sync().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.counters().segments_deleted == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    log.close().unwrap();
    let deleted = log.counters().segments_deleted;
    assert!(deleted >= 1);
    let rs = records(dir.path());
    let claims = rs
        .iter()
        .filter(|r| r.kind == RecordKind::RetentionApplied)
        .count();
    assert_eq!(claims as u64, deleted);
    let report = assert_valid(dir.path());
    assert!(
        report.deleted > 0 && report.deleted <= 40,
        "{}",
        report.deleted
    );
    // Every record kept is one that was not to expire, or shares a segment
    // with one.
    assert!(rs.iter().any(|r| r.seq == 59));
    // The tree still proves a deleted record's leaf.
    let p = crate::audit::proof::prove_inclusion(dir.path(), 0, None).unwrap();
    assert!(p.record.is_none());
    crate::audit::proof::check(
        &crate::audit::proof::ProofDoc::Inclusion(p),
        None,
        Some(&signer().verifier()),
    )
    .unwrap();
}

#[test]
fn an_unknown_retention_class_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut e = entry(0);
    e.retention_class = Some("forever".into());
    let err = log.append(e).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown retention class `forever`"),
        "{err}"
    );
    assert_eq!(log.counters().refused, 1);
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = open(dir.path());
    let err = AuditLog::open(config(dir.path())).unwrap_err();
    assert!(matches!(err, AuditError::Locked { .. }), "{err}");
}

#[test]
fn a_changed_tree_is_never_signed_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    // Index entries close together: the open reads only the last records.
    c.index_every_bytes = 1024;
    let log = AuditLog::open(c).unwrap();
    for i in 0..16 {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    // History rewritten (an early record edited) and the tree files
    // rebuilt from it: the new tree does not extend the signed one.
    let seg = segment::list_segments(dir.path()).unwrap().pop().unwrap();
    let text = fs::read_to_string(&seg.records).unwrap();
    fs::write(&seg.records, text.replacen("agent-0", "agent-9", 1)).unwrap();
    fs::remove_dir_all(dir.path().join(TREE_DIR)).unwrap();
    let mut c = config(dir.path());
    c.index_every_bytes = 1024;
    let log = AuditLog::open(c).unwrap();
    log.append(entry(16)).unwrap();
    log.close().unwrap();
    let c = log.counters();
    assert_eq!((c.checkpoints, c.checkpoint_refusals), (0, 1));
    let history = fs::read_to_string(dir.path().join(HISTORY_FILE)).unwrap();
    assert_eq!(split_notes(&history).len(), 1);
}

#[test]
fn a_log_cut_below_its_last_checkpoint_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..10 {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let seg = segment::list_segments(dir.path()).unwrap().pop().unwrap();
    let bytes = fs::read(&seg.records).unwrap();
    let cut = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap();
    fs::write(&seg.records, &bytes[..=cut]).unwrap();
    let err = AuditLog::open(config(dir.path())).unwrap_err();
    assert!(
        err.to_string()
            .contains("commits to 10 records but the log holds 9"),
        "{err}"
    );
}
