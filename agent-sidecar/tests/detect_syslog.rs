//! Alerts to syslog, received and parsed by a real rsyslogd (Debian's,
//! with GnuTLS): RFC 5424 over TLS (RFC 5425 octet counting), TCP and UDP;
//! and the disk queue that keeps alerts while the collector is down, also
//! across a restart of the sender.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use agent_sidecar::detect::{
    Activity, Alert, AlertSink, DetectionMetrics, EventRef, Fold, Pattern, SyslogAlerts,
    SyslogConfig, SyslogTarget,
};
use agent_sidecar::metrics::Metrics;
use agent_sidecar::policy::detection::{DetectorKind, Response};
use agent_sidecar_test_support::{ca::TestCa, rsyslog::Rsyslog, temp::TempDir};
use serde_json::Value;

fn alert(i: u64) -> Alert {
    Alert {
        id: format!("alr_{i:032x}"),
        agent_id: "support-1".into(),
        pool: None,
        detector: DetectorKind::NewDestination,
        pattern: Pattern::Unseen,
        subject: format!("exfil-{i}.evil.example"),
        severity: 4,
        first_ms: 1_767_600_000_000 + i,
        last_ms: 1_767_600_000_123 + i,
        count: 1,
        observed: 1.0,
        baseline: 0.0,
        threshold: 0.0,
        unit: "uses".into(),
        events: vec![EventRef {
            kind: "connection".into(),
            at_ms: 1_767_600_000_000,
            tool: None,
            action: None,
            destination: Some(format!("exfil-{i}.evil.example")),
            amount: None,
            bytes: 20_000_000,
            trace_id: None,
            record_id: None,
        }],
        response: Response::Notify,
        fold: Fold::Destination {
            destination: format!("exfil-{i}.evil.example"),
        },
    }
}

fn config(target: &str, queue: &TempDir, ca: &TestCa) -> SyslogConfig {
    let mut c = SyslogConfig::new(target.parse::<SyslogTarget>().unwrap(), queue.path());
    c.tls = Some(ca.client_config());
    c.hostname = "sidecar-host".into();
    c.initial_backoff = Duration::from_millis(100);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_receives_and_parses_alerts_over_tls_tcp_and_udp() {
    let ca = TestCa::new();
    let rs = Rsyslog::start(&ca, 0);
    let queues = [TempDir::new(), TempDir::new(), TempDir::new()];
    let targets = [
        format!("tls://localhost:{}", rs.tls_port),
        format!("tcp://127.0.0.1:{}", rs.tcp_port),
        format!("udp://127.0.0.1:{}", rs.udp_port),
    ];
    let mut sinks = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let s = SyslogAlerts::spawn(config(t, &queues[i], &ca)).unwrap();
        s.deliver(&alert(i as u64), Activity::Create);
        sinks.push(s);
    }
    let got = tokio::task::spawn_blocking(move || {
        let got = rs.wait_for(3, Duration::from_secs(10));
        drop(rs);
        got
    })
    .await
    .unwrap();
    assert_eq!(got.len(), 3, "{got:#?}");
    for (i, input) in ["tls", "tcp", "udp"].into_iter().enumerate() {
        let r = got
            .iter()
            .find(|r| r.input == input)
            .unwrap_or_else(|| panic!("nothing over {input}: {got:#?}"));
        // facility 13 (log audit) * 8 + severity 3 (error, OCSF high).
        assert_eq!(r.pri, 107, "{r:?}");
        assert_eq!(r.hostname, "sidecar-host");
        assert_eq!(r.app_name, "agent-sidecar");
        assert_eq!(r.msgid, "detection");
        assert_eq!(r.procid, std::process::id().to_string());
        assert!(r.timestamp.starts_with("2026-01-05T08:00:00.1"), "{r:?}");
        let id = format!("alr_{:032x}", i);
        assert!(
            r.structured_data.starts_with(&format!(
                "[alert@32473 id=\"{id}\" agent=\"support-1\" detector=\"new_destination\""
            )),
            "{r:?}"
        );
        let finding: Value = serde_json::from_str(&r.msg).expect("the message is the OCSF finding");
        assert_eq!(finding["class_uid"], 2004);
        assert_eq!(finding["finding_info"]["uid"], id.as_str());
    }
    for s in &sinks {
        assert_eq!(s.counters().sent.load(Ordering::Relaxed), 1);
        assert_eq!(s.counters().dropped.load(Ordering::Relaxed), 0);
    }
    for q in &queues {
        assert_eq!(
            std::fs::read_dir(q.path()).unwrap().count(),
            0,
            "queue not emptied"
        );
    }
}

#[test]
fn alerts_wait_on_disk_while_the_collector_is_down_and_across_a_restart() {
    let ca = TestCa::new();
    let queue = TempDir::new();
    // A port nobody listens on yet; the collector comes up there later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("tls://localhost:{port}");
    let metrics = Arc::new(Metrics::new());
    let config = |queue: &TempDir| {
        let mut c = config(&target, queue, &ca);
        c.metrics = Some((
            metrics.clone() as Arc<dyn DetectionMetrics>,
            "support-1".to_string(),
        ));
        c
    };

    // First run: the collector is down; three alerts are queued, then the
    // sender stops (its runtime is dropped, as at a crash or restart).
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sink = rt.block_on(async { SyslogAlerts::spawn(config(&queue)).unwrap() });
        for i in 0..3 {
            sink.deliver(&alert(i), Activity::Create);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.counters().failed_attempts.load(Ordering::Relaxed) < 2 {
            assert!(std::time::Instant::now() < deadline, "no attempt failed");
            std::thread::sleep(Duration::from_millis(20));
        }
        let queued = std::fs::read_dir(queue.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "msg")
            })
            .count();
        assert_eq!(queued, 3, "the alerts are on disk");
        assert_eq!(sink.counters().sent.load(Ordering::Relaxed), 0);
        drop(rt);
    }

    // The collector comes up; a new sender with the same queue delivers
    // the three, oldest first, then a fourth.
    let rs = Rsyslog::start(&ca, port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sink = rt.block_on(async { SyslogAlerts::spawn(config(&queue)).unwrap() });
    sink.deliver(&alert(3), Activity::Update);
    let got = rs.wait_for(4, Duration::from_secs(10));
    let ids: Vec<String> = got
        .iter()
        .map(|r| {
            let f: Value = serde_json::from_str(&r.msg).unwrap();
            f["finding_info"]["uid"].as_str().unwrap().to_string()
        })
        .collect();
    let want: Vec<String> = (0..4).map(|i| format!("alr_{i:032x}")).collect();
    assert_eq!(ids, want);
    let f: Value = serde_json::from_str(&got[3].msg).unwrap();
    assert_eq!(f["activity_id"], 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::fs::read_dir(queue.path()).unwrap().count() > 0 {
        assert!(std::time::Instant::now() < deadline, "queue not emptied");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Failed attempts and deliveries are on /metrics, not only in the log.
    let text = metrics.render();
    for outcome in ["failed", "sent"] {
        let family = format!(
            "agent_sidecar_alert_deliveries_total{{agent_id=\"support-1\",outcome=\"{outcome}\",sink=\"syslog\"}}"
        );
        assert!(text.contains(&family), "{family} not in\n{text}");
    }
    assert!(
        text.contains("agent_sidecar_alert_deliveries_total{agent_id=\"support-1\",outcome=\"sent\",sink=\"syslog\"} 4"),
        "{text}"
    );
}

#[test]
fn collector_urls_are_checked() {
    for ok in [
        "udp://127.0.0.1:514",
        "tcp://siem.example:601",
        "tls://[::1]:6514",
    ] {
        let t: SyslogTarget = ok.parse().unwrap();
        assert_eq!(t.to_string(), ok);
    }
    for bad in [
        "syslog://h:514",
        "tls://h",
        "tcp://:601",
        "udp://h:0",
        "h:514",
    ] {
        assert!(bad.parse::<SyslogTarget>().is_err(), "{bad}");
    }
}
