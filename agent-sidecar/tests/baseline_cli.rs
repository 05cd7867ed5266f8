//! `agent-sidecar baseline show|export|import|merge|benign` on real files:
//! two replicas' baselines are exported, merged into their role's pool and
//! imported; a new agent of the role starts from the pool, learned; an
//! alert marked benign is folded into its agent's file.

use std::{
    path::Path,
    process::{Command, Output},
    sync::{Arc, Mutex},
    time::Duration,
};

use agent_sidecar::{
    detect::{
        Activity, Alert, AlertSink, BaselineStore, Detection, DetectionOptions, Observation,
        ObservedKind, detection_finding, read_file,
    },
    policy::{Tier, detection::DetectionPolicy},
};
use agent_sidecar_test_support::temp::TempDir;

const H: u64 = 3_600_000;
/// Monday 2026-01-05 00:00 UTC.
const MONDAY: u64 = 1_767_571_200_000;

#[derive(Default)]
struct Collect(Mutex<Vec<Alert>>);

impl AlertSink for Collect {
    fn deliver(&self, alert: &Alert, activity: Activity) {
        if activity == Activity::Create {
            self.0.lock().unwrap().push(alert.clone());
        }
    }
}

fn engine(dir: &Path, pool: Option<&str>) -> (Detection, Arc<Collect>) {
    let sink = Arc::new(Collect::default());
    let policy = Arc::new(DetectionPolicy {
        learning: Duration::from_secs(86_400),
        min_learning_events: 10,
        pool: pool.map(str::to_string),
        ..DetectionPolicy::default()
    });
    let d = Detection::new(DetectionOptions {
        policy: Arc::new(move |_| policy.clone()),
        store: Some(BaselineStore::new(dir)),
        sinks: vec![sink.clone() as Arc<dyn AlertSink>],
        responder: None,
        clock: Some(Arc::new(|| MONDAY)),
    });
    (d, sink)
}

fn call<'a>(at: u64, action: &'a str, host: &'a str) -> Observation<'a> {
    let mut o = Observation::new(ObservedKind::ToolCall, at);
    o.tool = Some("crm");
    o.action = Some(action);
    o.destination = Some(host);
    o.tier = Some(Tier::Autonomous);
    o
}

/// Two days of calls every 10 minutes, 8:00-18:00, to `host`.
fn learn(d: &Detection, agent: &str, host: &str) {
    for day in 0..2 {
        for i in 0..60 {
            let at = MONDAY + day * 24 * H + 8 * H + i * 600_000;
            d.observe(
                agent,
                &call(at, if i % 2 == 0 { "get" } else { "list" }, host),
            );
        }
    }
}

fn cli(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .args(args)
        .output()
        .expect("run agent-sidecar");
    assert!(
        out.status.success(),
        "agent-sidecar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn replicas_pool_into_a_role_that_seeds_a_new_agent_and_benign_alerts_fold_in() {
    let tmp = TempDir::new();
    let dir = tmp.path().join("baselines");
    let d = dir.to_str().unwrap();
    {
        let (e, _) = engine(&dir, None);
        learn(&e, "support-1", "crm-a.example");
        learn(&e, "support-2", "crm-b.example");
        assert_eq!(e.save(), 2);
    }
    let show = cli(&["baseline", "show", "--dir", d, "--agent", "support-1"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("learned (120 events)"), "{text}");
    assert!(text.contains("crm-a.example (120)"), "{text}");

    let s1 = tmp.path().join("s1.json");
    let s2 = tmp.path().join("s2.json");
    let pool = tmp.path().join("support.json");
    cli(&[
        "baseline",
        "export",
        "--dir",
        d,
        "--agent",
        "support-1",
        "-o",
        s1.to_str().unwrap(),
    ]);
    cli(&[
        "baseline",
        "export",
        "--dir",
        d,
        "--agent",
        "support-2",
        "--output",
        s2.to_str().unwrap(),
    ]);
    cli(&[
        "baseline",
        "merge",
        s1.to_str().unwrap(),
        s2.to_str().unwrap(),
        "--name",
        "support",
        "-o",
        pool.to_str().unwrap(),
    ]);
    let merged = read_file(&pool).unwrap();
    assert_eq!(merged.events(), 240);
    assert_eq!(merged.sizes().2, 2, "both replicas' destinations");
    cli(&[
        "baseline",
        "import",
        "--dir",
        d,
        "--pool",
        "support",
        pool.to_str().unwrap(),
    ]);

    // A third replica starts from the pool: learned, both hosts known.
    let (e, alerts) = engine(&dir, Some("support"));
    let t = MONDAY + 3 * 24 * H + 9 * H;
    e.observe("support-3", &call(t, "get", "crm-b.example"));
    e.observe("support-3", &call(t + 60_000, "list", "crm-a.example"));
    assert!(
        alerts.0.lock().unwrap().is_empty(),
        "{:?}",
        alerts.0.lock().unwrap()
    );
    e.observe("support-3", &call(t + 120_000, "get", "new.example"));
    let alert = alerts.0.lock().unwrap()[0].clone();
    e.save();
    drop(e);

    // The analyst marks it benign (the OCSF finding as delivered).
    let finding = tmp.path().join("alert.json");
    std::fs::write(
        &finding,
        serde_json::to_vec(&detection_finding(&alert, Activity::Create)).unwrap(),
    )
    .unwrap();
    cli(&["baseline", "benign", "--dir", d, finding.to_str().unwrap()]);
    let (e, alerts) = engine(&dir, Some("support"));
    e.observe("support-3", &call(t + 2 * H, "get", "new.example"));
    assert!(alerts.0.lock().unwrap().is_empty(), "folded in: no alert");
}

#[test]
fn unusable_files_are_refused_with_the_path_and_the_fix() {
    let tmp = TempDir::new();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, b"{\"format\": 9}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .args([
            "baseline",
            "import",
            "--dir",
            tmp.path().to_str().unwrap(),
            "--agent",
            "a",
        ])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json") && err.contains("is not a baseline"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .args([
            "baseline",
            "show",
            "--dir",
            tmp.path().to_str().unwrap(),
            "--agent",
            "missing",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));
}
