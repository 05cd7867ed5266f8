//! The audit log on a full file system: appends fail closed with the
//! documented error, nothing is lost or renumbered, and writing resumes
//! once space is freed. A 64 KiB tmpfs stands for the full disk (root).

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use agent_sidecar::audit::{
    AuditConfig, AuditEntry, AuditError, AuditLog, FsyncPolicy, Phase, RecordKind,
    record::AgentIdentity,
    verify::{VerifyOptions, verify},
};
use agent_sidecar_tests::{privileged, sh, unique};

/// A tmpfs mounted for the test, unmounted and removed when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(unique("audit-full"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                dir.to_str().unwrap(),
            ],
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn entry(i: u64) -> AuditEntry {
    let mut e = AuditEntry::new(
        RecordKind::ToolCall,
        Phase::Attempt,
        AgentIdentity::id("agent-full"),
    );
    e.detail = Some(serde_json::json!({"call": i, "note": "x".repeat(400)}));
    e
}

/// Fills the file system with `path` until it is full; returns its size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = [0u8; 4096];
    let mut n = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    let _ = f.sync_all();
    n
}

#[test]
fn a_full_disk_fails_closed_and_recovers_when_space_returns() {
    if !privileged() {
        return;
    }
    let fs = Tmpfs::mount("64k");
    let dir = fs.0.join("log");
    let mut config = AuditConfig::new(
        &dir,
        "example.test/audit/full",
        AgentIdentity::id("agent-full"),
    );
    config.fsync = FsyncPolicy::Always;
    config.retry_interval = Duration::from_millis(20);
    let log = AuditLog::open(config).expect("open");
    // Some records, then the rest of the space taken by another file.
    for i in 0..5 {
        log.append(entry(i)).expect("append");
    }
    log.sync().expect("sync");
    let filler = fs.0.join("filler");
    assert!(fill(&filler) > 0);

    // Appends go on until the writer finds the disk full; from then on
    // every append is refused with the documented error.
    let mut accepted = 5u64;
    let err = loop {
        match log.append(entry(accepted)).and_then(|_| log.sync()) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 10_000, "the tmpfs never filled");
    };
    let AuditError::Unwritable { kind, fix, .. } = &err else {
        panic!("want Unwritable, got {err}");
    };
    assert_eq!(*kind, io::ErrorKind::StorageFull, "{err}");
    assert!(fix.contains("free space"), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("cannot write")
            && text.contains("No space left on device")
            && text.contains("refused"),
        "{text}"
    );
    // The record whose sync failed was accepted; it waits in memory.
    let queued_seq = accepted;
    let refused = log.append(entry(999)).unwrap_err();
    assert!(
        matches!(refused, AuditError::Unwritable { .. }),
        "{refused}"
    );
    let c = log.counters();
    assert!(c.failing && c.failures >= 1 && c.refused >= 1, "{c:?}");

    // Space returns: the kept records are written, appends are accepted.
    std::fs::remove_file(&filler).expect("free space");
    let deadline = Instant::now() + Duration::from_secs(10);
    let next = loop {
        match log.append(entry(queued_seq + 1)) {
            Ok(a) => break a,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("still refused after space returned: {e}"),
        }
    };
    assert_eq!(
        next.seq,
        queued_seq + 1,
        "no sequence number skipped or reused"
    );
    log.sync().expect("sync after recovery");
    assert!(!log.counters().failing);
    log.close().expect("close");
    drop(log);

    let report = verify(&dir, &VerifyOptions::default()).expect("verify");
    assert!(
        report.valid(),
        "{:?}",
        report.problems().collect::<Vec<_>>()
    );
    assert_eq!(report.size, queued_seq + 2);
}
