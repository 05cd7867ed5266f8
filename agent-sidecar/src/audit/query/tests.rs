use std::time::Duration;

use super::*;
use crate::audit::{
    store::AuditLog,
    test_support::{config, entry},
};

#[test]
fn filters_combine_and_a_time_window_opens_only_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.segment_max_bytes = 4 << 10;
    c.index_every_bytes = 1 << 10;
    let log = AuditLog::open(c).unwrap();
    let mut times = Vec::new();
    for i in 0..120 {
        times.push(log.append(entry(i)).unwrap().time);
        if i % 30 == 29 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    log.close().unwrap();

    let all = |f: &QueryFilter| {
        let mut seqs = Vec::new();
        let stats = query(dir.path(), f, |r, _| {
            seqs.push(r.seq);
            ControlFlow::Continue(())
        })
        .unwrap();
        (seqs, stats)
    };
    let (seqs, stats) = all(&QueryFilter::default());
    assert_eq!(seqs.len(), 120);
    assert_eq!(stats.segments_opened, stats.segments_total);

    let (seqs, _) = all(&QueryFilter {
        agent: Some("agent-1".into()),
        tier: Some(2),
        ..QueryFilter::default()
    });
    assert!(!seqs.is_empty());
    assert!(seqs.iter().all(|s| s % 3 == 1 && s % 4 == 1));

    let (seqs, _) = all(&QueryFilter {
        action: Some("erp.pay_invoice".into()),
        ..QueryFilter::default()
    });
    assert!(seqs.iter().all(|s| s % 5 == 0) && seqs.len() == 24);

    let trace = format!("{:032x}", 11);
    let (seqs, _) = all(&QueryFilter {
        trace: Some(trace),
        ..QueryFilter::default()
    });
    assert_eq!(seqs, vec![20, 21]);

    // Records 60..=89, by time: only the segments around them are read.
    let window = QueryFilter {
        since: Some(times[60]),
        until: Some(times[89]),
        ..QueryFilter::default()
    };
    let (seqs, stats) = all(&window);
    assert_eq!(seqs.first(), Some(&60));
    assert_eq!(seqs.last(), Some(&89));
    assert!(
        stats.segments_opened < stats.segments_total / 2,
        "{stats:?}"
    );
    assert!(stats.lines < 60, "{stats:?}");

    let (seqs, _) = all(&QueryFilter {
        kind: Some(RecordKind::KernelDeny),
        ..QueryFilter::default()
    });
    assert!(seqs.is_empty());
}
