//! Alerts in the SOC's formats: every detector's alert, new and updated,
//! is a valid OCSF 1.5 Detection Finding for an independent validator
//! (PyPI's ocsf-emitter, run offline), and reaches a real HTTP webhook
//! receiver within 100 ms of the event that raised it.

use std::{
    io::Write,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use agent_sidecar::{
    approvals::{WebhookConfig, WebhookNotifier},
    detect::{
        Activity, Alert, AlertSink, Detection, DetectionOptions, EventRef, Fold, Observation,
        ObservedKind, Pattern, WebhookAlerts, detection_finding,
    },
    policy::{
        Tier,
        detection::{DetectionPolicy, DetectorKind, Response},
    },
};
use agent_sidecar_test_support::{
    mcp::{python_script, test_python},
    webhook::Webhook,
};
use serde_json::Value;

fn alert(detector: DetectorKind, i: u64) -> Alert {
    let (pattern, subject) = match detector {
        DetectorKind::NewDestination => (Pattern::Unseen, "paste.evil.example"),
        DetectorKind::NewTool => (Pattern::Unseen, "admin"),
        DetectorKind::NewAction => (Pattern::Unseen, "crm.delete"),
        DetectorKind::NewTransition => (Pattern::Unseen, "db.read -> mail.send"),
        DetectorKind::OffHours => (Pattern::OffHours, "hour 03 (Mon)"),
        DetectorKind::DeniedBurst => (Pattern::Burst, "refused egress per minute"),
        DetectorKind::TierShift => (Pattern::Shift, "tier 3+ share"),
        _ => (Pattern::Surge, "per hour"),
    };
    Alert {
        id: format!("alr_{i:032x}"),
        agent_id: "support-1".into(),
        pool: Some("support".into()),
        detector,
        pattern,
        subject: subject.into(),
        severity: detector.defaults().severity,
        first_ms: 1_767_600_000_000,
        last_ms: 1_767_600_060_000,
        count: 3,
        observed: 1781.0,
        baseline: 525.5,
        threshold: 1767.25,
        unit: "amount".into(),
        events: vec![EventRef {
            kind: "tool_call".into(),
            at_ms: 1_767_600_000_000,
            tool: Some("payments".into()),
            action: Some("refund".into()),
            destination: Some("payments.acme.example".into()),
            amount: Some(29.0),
            bytes: 0,
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            record_id: Some("cmp_0001".into()),
        }],
        response: Response::RaiseTier,
        fold: Fold::Destination {
            destination: subject.into(),
        },
    }
}

fn validate(events: &[Value]) -> (bool, String) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for e in events {
        writeln!(file, "{}", serde_json::to_string(e).unwrap()).unwrap();
    }
    let out = Command::new(test_python())
        .arg(python_script("ocsf_validate.py"))
        .arg(file.path())
        .output()
        .expect("run the OCSF validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_detectors_alert_is_a_valid_ocsf_1_5_detection_finding() {
    let mut events = Vec::new();
    for (i, d) in DetectorKind::ALL.into_iter().enumerate() {
        let mut a = alert(d, i as u64);
        if d == DetectorKind::Idle {
            // An idle alert has no triggering event and nothing to fold.
            a.events.clear();
            a.fold = Fold::Nothing;
        }
        for activity in [Activity::Create, Activity::Update] {
            events.push(detection_finding(&a, activity));
        }
    }
    let (ok, out) = validate(&events);
    assert!(ok, "{out}");
    let n = 2 * DetectorKind::ALL.len();
    assert!(out.contains(&format!("valid {n} of {n}")), "{out}");
    let f = &events[0];
    assert_eq!(f["class_uid"], 2004);
    assert_eq!(f["type_uid"], 200401);
    assert_eq!(events[1]["type_uid"], 200402);
    assert_eq!(
        f["finding_info"]["uid"],
        "alr_00000000000000000000000000000000"
    );
    assert_eq!(f["metadata"]["product"]["name"], "agent-sidecar");
    let a = &f["anomaly_analyses"][0];
    assert_eq!(a["analysis_targets"][0]["name"], "support-1");
    assert_eq!(a["anomalies"][0]["observation_type"], "Frequency Analysis");
    assert_eq!(a["anomalies"][0]["observed_pattern"], "SURGE");
    assert_eq!(a["baselines"][0]["observations"][0]["value"], "525.5000");
    assert_eq!(f["evidences"][0]["uid"], "cmp_0001");
    assert_eq!(
        f["evidences"][0]["data"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let t = &events[2 * DetectorKind::NewTransition as usize];
    assert_eq!(
        t["anomaly_analyses"][0]["anomalies"][0]["observation_type"],
        "Sequence Analysis"
    );
    assert_eq!(
        t["anomaly_analyses"][0]["anomalies"][0]["observations"][0]["value"],
        "db.read -> mail.send"
    );
}

#[test]
fn the_validator_refuses_a_broken_finding() {
    let good = detection_finding(&alert(DetectorKind::NewTool, 1), Activity::Create);
    let mut wrong_type = good.clone();
    wrong_type["type_uid"] = 200409.into();
    let mut wrong_version = good.clone();
    wrong_version["metadata"]["version"] = "1.4.0".into();
    let mut no_uid = good.clone();
    no_uid["finding_info"]
        .as_object_mut()
        .unwrap()
        .remove("uid");
    for (what, e) in [
        ("type_uid", wrong_type),
        ("metadata.version", wrong_version),
        ("finding_info.uid", no_uid),
    ] {
        let (ok, out) = validate(&[e]);
        assert!(!ok, "{what}: accepted: {out}");
        assert!(out.contains(what), "{what}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_the_soc_webhook_as_findings_within_100_ms() {
    let hook = Webhook::start().await;
    let notifier = Arc::new(WebhookNotifier::spawn(WebhookConfig::new(&hook.url)).unwrap());
    let policy = Arc::new(DetectionPolicy {
        learning: Duration::ZERO,
        min_learning_events: 1,
        ..DetectionPolicy::default()
    });
    let detection = Detection::new(DetectionOptions {
        policy: Arc::new(move |_| policy.clone()),
        store: None,
        sinks: vec![Arc::new(WebhookAlerts(notifier)) as Arc<dyn AlertSink>],
        responder: None,
        clock: None,
    });
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let mut first = Observation::new(ObservedKind::ToolCall, now());
    first.tool = Some("crm");
    first.action = Some("get");
    first.destination = Some("crm.example");
    first.tier = Some(Tier::Autonomous);
    let mut latencies = Vec::new();
    // One agent per alert: past 8 open alerts of one detector, an agent's
    // further new destinations fold into a storm.
    for i in 0..50 {
        let agent = format!("agent-{i}");
        detection.observe(&agent, &first);
        let host = format!("new-{i}.example");
        let mut o = first;
        o.at_ms = now();
        o.destination = Some(&host);
        let t = Instant::now();
        detection.observe(&agent, &o);
        loop {
            let got = hook.events.lock().unwrap().iter().any(|e| {
                e["finding"]["anomaly_analyses"][0]["anomalies"][0]["observations"][0]["value"]
                    == host
            });
            if got {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "alert {i} never arrived"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100 - 1];
    println!(
        "alert delivery to the webhook: p50 {:?}, p99 {:?}",
        latencies[latencies.len() / 2],
        p99
    );
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    let events: Vec<Value> = hook
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["event"], "detection.finding", "{e}");
            assert_eq!(e["finding"]["finding_info"]["uid"], e["alert_id"], "{e}");
            e["finding"].clone()
        })
        .collect();
    let new_destinations = events
        .iter()
        .filter(|e| e["finding_info"]["analytic"]["name"] == "new_destination")
        .count();
    assert_eq!(new_destinations, 50);
    let (ok, out) = validate(&events);
    assert!(ok, "{out}");
}
