use std::sync::{Arc, Mutex};

use super::*;
use crate::policy::{
    Tier,
    detection::{DetectionPolicy, DetectorKind, Response},
};

const H: u64 = 3_600_000;
/// Monday 2026-01-05 00:00 UTC.
const MONDAY: u64 = 1_767_571_200_000;

#[derive(Default)]
struct Collect(Mutex<Vec<(Alert, Activity)>>);

impl AlertSink for Collect {
    fn deliver(&self, alert: &Alert, activity: Activity) {
        self.0.lock().unwrap().push((alert.clone(), activity));
    }
}

fn engine(policy: DetectionPolicy, store: Option<BaselineStore>) -> (Detection, Arc<Collect>) {
    let sink = Arc::new(Collect::default());
    let policy = Arc::new(policy);
    let d = Detection::new(DetectionOptions {
        policy: Arc::new(move |_| policy.clone()),
        store,
        sinks: vec![sink.clone() as Arc<dyn AlertSink>],
        responder: None,
        clock: Some(Arc::new(|| MONDAY)),
    });
    (d, sink)
}

fn call<'a>(at: u64, tool: &'a str, action: &'a str, host: &'a str) -> Observation<'a> {
    let mut o = Observation::new(ObservedKind::ToolCall, at);
    o.tool = Some(tool);
    o.action = Some(action);
    o.destination = Some(host);
    o.tier = Some(Tier::Autonomous);
    o
}

fn quick_policy() -> DetectionPolicy {
    DetectionPolicy {
        learning: std::time::Duration::from_secs(86_400),
        min_learning_events: 10,
        ..DetectionPolicy::default()
    }
}

/// Two days of one call every 10 minutes, 8:00-18:00, alternating two
/// actions of one tool on one host.
fn learn(d: &Detection) {
    for day in 0..2 {
        for i in 0..60 {
            let at = MONDAY + day * 24 * H + 8 * H + i * 600_000;
            let action = if i % 2 == 0 { "get" } else { "list" };
            d.observe("a", &call(at, "crm", action, "crm.example"));
        }
    }
}

#[test]
fn nothing_alerts_while_learning_then_a_new_destination_does_once_with_a_count() {
    let (d, sink) = engine(quick_policy(), None);
    let mut first = call(MONDAY + 9 * H, "crm", "get", "evil.example");
    first.trace_id = Some("0af7651916cd43dd8448eb211c80319c");
    d.observe("a", &first);
    learn(&d);
    assert!(sink.0.lock().unwrap().is_empty(), "alerted while learning");
    assert!(d.with_state("a", |s| s.baseline().learned()).unwrap());
    // Learned during the learning period: not new.
    d.observe(
        "a",
        &call(MONDAY + 2 * 24 * H + 9 * H, "crm", "get", "evil.example"),
    );
    assert!(sink.0.lock().unwrap().is_empty());
    for i in 0..5 {
        let mut o = call(
            MONDAY + 2 * 24 * H + 10 * H + i * 1000,
            "crm",
            "get",
            "exfil.example",
        );
        o.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736");
        d.observe("a", &o);
    }
    let got = sink.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let (a, act) = &got[0];
    assert_eq!(*act, Activity::Create);
    assert_eq!(a.detector, DetectorKind::NewDestination);
    assert_eq!(a.subject, "exfil.example");
    assert_eq!(
        a.events[0].trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    // The storm is one alert; its window's end delivers the count.
    d.close();
    let got = sink.0.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1, Activity::Update);
    assert_eq!(got[1].0.count, 5);
    assert_eq!(got[1].0.events.len(), 5);
}

#[test]
fn new_tool_new_action_and_new_transition_each_fire_once() {
    let (d, sink) = engine(quick_policy(), None);
    learn(&d);
    let t = MONDAY + 2 * 24 * H + 9 * H;
    d.observe("a", &call(t, "crm", "get", "crm.example"));
    d.observe("a", &call(t + 1000, "crm", "get", "crm.example"));
    d.observe("a", &call(t + 2000, "mailer", "send", "crm.example"));
    d.observe("a", &call(t + 3000, "crm", "delete", "crm.example"));
    let got: Vec<DetectorKind> = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.0.detector)
        .collect();
    assert_eq!(
        got,
        [
            DetectorKind::NewTransition,
            DetectorKind::NewTool,
            DetectorKind::NewAction
        ]
    );
}

#[test]
fn marking_an_alert_benign_folds_it_in() {
    let (d, sink) = engine(quick_policy(), None);
    learn(&d);
    let t = MONDAY + 2 * 24 * H + 9 * H;
    d.observe("a", &call(t, "crm", "get", "new.example"));
    let id = sink.0.lock().unwrap()[0].0.id.clone();
    assert!(d.mark_benign("a", &id));
    assert!(!d.mark_benign("a", &id), "folded twice");
    d.observe("a", &call(t + 2 * H, "crm", "get", "new.example"));
    assert_eq!(sink.0.lock().unwrap().len(), 1);
}

#[test]
fn baselines_persist_atomically_and_reload_learned() {
    let dir = tempfile::tempdir().unwrap();
    let store = BaselineStore::new(dir.path());
    {
        let (d, _) = engine(quick_policy(), Some(store.clone()));
        learn(&d);
        assert_eq!(d.save(), 1);
        assert_eq!(d.save(), 0, "an unchanged baseline is not written again");
    }
    let path = store.agent_path("a");
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    let (d, sink) = engine(quick_policy(), Some(store));
    d.observe(
        "a",
        &call(MONDAY + 3 * 24 * H + 9 * H, "crm", "get", "other.example"),
    );
    assert_eq!(
        sink.0.lock().unwrap().len(),
        1,
        "the reloaded baseline is learned"
    );
}

#[test]
fn an_unreadable_baseline_is_moved_aside_counted_and_learned_anew() {
    let dir = tempfile::tempdir().unwrap();
    let store = BaselineStore::new(dir.path());
    let path = store.agent_path("a");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{not json").unwrap();
    let (d, _) = engine(quick_policy(), Some(store));
    d.observe("a", &call(MONDAY, "crm", "get", "crm.example"));
    assert_eq!(d.store_errors(), 1);
    assert!(path.with_extension("json.unreadable").exists());
}

#[test]
fn agent_ids_cannot_escape_the_store_directory() {
    let store = BaselineStore::new("/var/lib/x");
    for id in ["../../etc/passwd", "a/b", ".hidden", ""] {
        let p = store.agent_path(id);
        assert_eq!(
            p.parent().unwrap(),
            std::path::Path::new("/var/lib/x/agents"),
            "{id}"
        );
        assert!(
            !p.file_name().unwrap().to_str().unwrap().starts_with('.'),
            "{id}"
        );
    }
}

#[test]
fn a_pool_seeds_a_new_agent_which_is_then_learned() {
    let dir = tempfile::tempdir().unwrap();
    let store = BaselineStore::new(dir.path());
    let (d, _) = engine(quick_policy(), None);
    learn(&d);
    let pooled = d.with_state("a", |s| s.baseline().clone()).unwrap();
    store.save_pool("support", &pooled).unwrap();
    let policy = DetectionPolicy {
        pool: Some("support".into()),
        ..quick_policy()
    };
    let (d, sink) = engine(policy, Some(store));
    d.observe(
        "b",
        &call(MONDAY + 5 * 24 * H + 9 * H, "crm", "get", "crm.example"),
    );
    assert!(sink.0.lock().unwrap().is_empty());
    d.observe(
        "b",
        &call(MONDAY + 5 * 24 * H + 9 * H + 1, "crm", "list", "x.example"),
    );
    assert_eq!(sink.0.lock().unwrap().len(), 1);
}

#[test]
fn merge_adds_counts_and_unites_keys_and_transitions() {
    let (d, _) = engine(quick_policy(), None);
    learn(&d);
    d.observe("b", &call(MONDAY, "erp", "order", "erp.example"));
    d.observe("b", &call(MONDAY + 1000, "erp", "approve", "erp.example"));
    let mut a = d.with_state("a", |s| s.baseline().clone()).unwrap();
    let b = d.with_state("b", |s| s.baseline().clone()).unwrap();
    a.merge(&b);
    assert_eq!(a.sizes(), (2, 4, 2, 3));
    assert_eq!(a.events(), 122);
    let round = Baseline::from_file(
        serde_json::from_str(&serde_json::to_string(&a.to_file()).unwrap()).unwrap(),
    );
    assert_eq!(round.to_file(), a.to_file());
}

#[test]
fn tables_stop_at_their_caps_and_memory_stays_within_the_bound() {
    let (d, _) = engine(DetectionPolicy::default(), None);
    let long = "x".repeat(300);
    for i in 0..(MAX_ACTIONS * 3) {
        // Every key at its longest: `tool.action` is cut at 128 bytes.
        let tool = format!("tool-{}", i % (MAX_TOOLS + 8));
        let action = format!("{i}-{long}");
        let host = format!("{i}-{long}.example");
        d.observe("a", &call(MONDAY + i as u64 * 1000, &tool, &action, &host));
    }
    let (tools, actions, dests, trans) = d.with_state("a", |s| s.baseline().sizes()).unwrap();
    assert_eq!(
        (tools, actions, dests),
        (MAX_TOOLS, MAX_ACTIONS, MAX_DESTINATIONS)
    );
    assert!(trans <= MAX_TRANSITIONS);
    let (_, bytes) = d.footprint();
    assert!(
        bytes <= MEMORY_BOUND_BYTES,
        "{bytes} > {MEMORY_BOUND_BYTES}"
    );
}

#[test]
fn a_raise_tier_response_without_a_gateway_says_it_was_not_applied() {
    let mut p = quick_policy();
    p.detectors[DetectorKind::NewDestination as usize].response = Response::RaiseTier;
    let (d, _) = engine(p, None);
    let bus_sink = Arc::new(Mutex::new(Vec::new()));
    struct Responses(Arc<Mutex<Vec<crate::events::DetectionResponse>>>);
    impl crate::events::ActionSink for Responses {
        fn consume(&self, e: crate::events::ActionEvent<'_>) {
            if let crate::events::ActionEvent::Response(r) = e {
                self.0.lock().unwrap().push(r.clone());
            }
        }
    }
    d.set_bus(crate::events::EventBus::new(vec![Arc::new(Responses(
        bus_sink.clone(),
    ))]));
    learn(&d);
    d.observe(
        "a",
        &call(MONDAY + 2 * 24 * H + 9 * H, "crm", "get", "new.example"),
    );
    let r = bus_sink.lock().unwrap();
    assert_eq!(r.len(), 1);
    assert!(!r[0].applied);
    assert_eq!(r[0].min_tier, Some(Tier::Approval));
}
