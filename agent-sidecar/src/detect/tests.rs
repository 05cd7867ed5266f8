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

/// A week of 08:00-18:00 weekdays, 6 calls an hour (one every 10 min),
/// learned with the default 7-day period shortened to 5 days.
fn learn_week(d: &Detection) {
    for day in 0..5 {
        for i in 0..60 {
            let at = MONDAY + day * 24 * H + 8 * H + i * 600_000;
            let action = if i % 2 == 0 { "get" } else { "list" };
            d.observe("a", &call(at, "crm", action, "crm.example"));
        }
    }
}

fn week_policy() -> DetectionPolicy {
    DetectionPolicy {
        learning: std::time::Duration::from_secs(4 * 86_400),
        min_learning_events: 100,
        ..DetectionPolicy::default()
    }
}

fn detectors(sink: &Collect) -> Vec<DetectorKind> {
    sink.0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, act)| *act == Activity::Create)
        .map(|(a, _)| a.detector)
        .collect()
}

#[test]
fn a_runaway_loop_is_a_rate_surge_a_busy_hour_is_not() {
    let (d, sink) = engine(week_policy(), None);
    learn_week(&d);
    // Next Monday 10:00: twice the usual calls, then a loop of 100.
    let t = MONDAY + 7 * 24 * H + 10 * H;
    for i in 0..12 {
        let action = if i % 2 == 0 { "get" } else { "list" };
        d.observe("a", &call(t + i * 60_000, "crm", action, "crm.example"));
    }
    assert!(detectors(&sink).is_empty(), "{:?}", detectors(&sink));
    for i in 0..100 {
        let action = if i % 2 == 0 { "get" } else { "list" };
        d.observe(
            "a",
            &call(t + 20 * 60_000 + i * 1000, "crm", action, "crm.example"),
        );
    }
    assert_eq!(detectors(&sink), [DetectorKind::RateSurge]);
    let a = sink.0.lock().unwrap()[0].0.clone();
    // Median 6, sigma floored at max(sqrt 6, 3, 2) = 3: threshold 24, and
    // the policy's least 30 calls.
    assert_eq!(a.baseline, 6.0);
    assert_eq!(a.threshold, 24.0);
    assert_eq!(a.observed, 30.0);
}

#[test]
fn a_run_of_approvals_and_denials_is_a_tier_shift_once() {
    let (d, sink) = engine(week_policy(), None);
    learn_week(&d);
    // 25 calls in the hour (under the rate threshold); the last 10 held
    // or refused.
    let t = MONDAY + 7 * 24 * H + 10 * H;
    for i in 0..25u64 {
        let action = if i % 2 == 0 { "get" } else { "list" };
        let mut o = call(t + i * 120_000, "crm", action, "crm.example");
        if i >= 15 {
            o.tier = Some(if i % 2 == 0 {
                Tier::Approval
            } else {
                Tier::Deny
            });
        }
        d.observe("a", &o);
    }
    assert_eq!(detectors(&sink), [DetectorKind::TierShift]);
    let a = sink.0.lock().unwrap()[0].0.clone();
    assert!(
        a.observed > a.threshold && a.threshold > a.baseline,
        "{a:?}"
    );
}

#[test]
fn a_flood_of_new_destinations_is_a_storm_not_a_flood_of_alerts() {
    let mut p = quick_policy();
    p.detectors[DetectorKind::RateSurge as usize].enabled = false;
    let (d, sink) = engine(p, None);
    learn(&d);
    let t = MONDAY + 2 * 24 * H + 9 * H;
    let hosts: Vec<String> = (0..500).map(|i| format!("h{i}.evil.example")).collect();
    for (i, h) in hosts.iter().enumerate() {
        let action = if i % 2 == 0 { "get" } else { "list" };
        d.observe("a", &call(t + i as u64 * 100, "crm", action, h));
    }
    assert_eq!(detectors(&sink), [DetectorKind::NewDestination; STORM]);
    d.close();
    // Each alert's final count: its update's, else 1.
    let got = sink.0.lock().unwrap().clone();
    let total: u32 = got
        .iter()
        .filter(|(_, act)| *act == Activity::Create)
        .map(|(a, _)| {
            got.iter()
                .find(|(u, act)| *act == Activity::Update && u.id == a.id)
                .map_or(1, |(u, _)| u.count)
        })
        .sum();
    assert_eq!(total, 500, "every new destination is counted");
}

#[test]
fn the_hour_profile_follows_the_local_time() {
    // Learned 08:00-18:00 UTC; with the agents at UTC+2 that is 10:00-20:00
    // local, so 09:00 UTC (11:00 local) is in hours, 22:30 UTC (00:30
    // local) is not.
    let p = DetectionPolicy {
        utc_offset_minutes: 120,
        ..quick_policy()
    };
    let (d, sink) = engine(p, None);
    learn(&d);
    let t = MONDAY + 2 * 24 * H;
    let alternate = |i: u64| if i.is_multiple_of(2) { "get" } else { "list" };
    for i in 0..3 {
        let at = t + 9 * H + i * 60_000;
        d.observe("a", &call(at, "crm", alternate(i), "crm.example"));
    }
    let summaries: Vec<String> = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.0.summary())
        .collect();
    assert!(summaries.is_empty(), "{summaries:?}");
    for i in 0..3 {
        let at = t + 22 * H + 30 * 60_000 + i * 60_000;
        d.observe("a", &call(at, "crm", alternate(i), "crm.example"));
    }
    assert_eq!(detectors(&sink), [DetectorKind::OffHours]);
}

#[test]
fn a_learning_period_that_ends_within_an_hour_judges_that_hour_by_what_it_learned() {
    // Learns for 9 s (get, list, get, list, get), then judges the rest of
    // its first hour, 03:00, by that.
    let p = DetectionPolicy {
        learning: std::time::Duration::from_secs(9),
        min_learning_events: 1,
        ..DetectionPolicy::default()
    };
    let (d, sink) = engine(p, None);
    let t = MONDAY + 3 * H;
    for i in 0..8u64 {
        let action = if i.is_multiple_of(2) { "get" } else { "list" };
        d.observe("a", &call(t + i * 2000, "crm", action, "crm.example"));
    }
    assert!(d.with_state("a", |s| s.baseline().learned()).unwrap());
    let summaries: Vec<String> = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.0.summary())
        .collect();
    assert!(summaries.is_empty(), "{summaries:?}");
}

#[test]
fn a_thousand_agents_baselines_stay_within_the_documented_bound() {
    let (d, _) = engine(quick_policy(), None);
    for i in 0..1000 {
        let agent = format!("agent-{i:04}");
        for day in 0..2 {
            for j in 0..30u64 {
                let at = MONDAY + day * 24 * H + 8 * H + j * 1_200_000;
                let action = if j.is_multiple_of(2) { "get" } else { "list" };
                d.observe(&agent, &call(at, "crm", action, "crm.example"));
            }
        }
    }
    let (agents, bytes) = d.footprint();
    assert_eq!(agents, 1000);
    println!(
        "1,000 agents: {bytes} bytes of baselines, {} per agent",
        bytes / agents
    );
    assert!(bytes <= 1000 * MEMORY_BOUND_BYTES);
    assert!(
        bytes / agents <= 32 * 1024,
        "a small agent is far below the bound"
    );
}

#[test]
fn an_agent_idle_past_idle_after_alerts_once_per_idle_spell() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let now = Arc::new(AtomicU64::new(MONDAY));
    let sink = Arc::new(Collect::default());
    let policy = Arc::new(DetectionPolicy {
        idle_after: Some(std::time::Duration::from_secs(3600)),
        ..DetectionPolicy::default()
    });
    let clock = now.clone();
    let d = Detection::new(DetectionOptions {
        policy: Arc::new(move |_| policy.clone()),
        store: None,
        sinks: vec![sink.clone() as Arc<dyn AlertSink>],
        responder: None,
        clock: Some(Arc::new(move || clock.load(Ordering::SeqCst))),
    });
    d.preload("a");
    now.store(MONDAY + H / 2, Ordering::SeqCst);
    assert_eq!(d.check_idle(), 0, "idle for 30 min of the 60 allowed");
    now.store(MONDAY + H + 60_000, Ordering::SeqCst);
    assert_eq!(d.check_idle(), 1, "idle for 61 min");
    assert_eq!(d.check_idle(), 0, "one alert per idle spell");
    {
        let got = sink.0.lock().unwrap();
        let (a, activity) = &got[0];
        assert_eq!(
            (a.detector, a.pattern, *activity),
            (DetectorKind::Idle, Pattern::Idle, Activity::Create)
        );
        assert_eq!((a.observed, a.threshold), (3660.0, 3600.0));
        assert!(
            a.summary().contains("no action for 3660 s"),
            "{}",
            a.summary()
        );
        let ocsf = detection_finding(a, Activity::Create);
        assert!(
            ocsf.to_string().contains("seconds_since_last_action"),
            "{ocsf}"
        );
    }
    assert_eq!(d.alerts_raised(DetectorKind::Idle), 1);
    let listed = d.with_state("a", |s| s.alerts().count()).unwrap();
    assert_eq!(listed, 1, "the idle alert is listed for marking benign");
    // An action ends the spell; the next spell alerts again.
    let t = MONDAY + H + 120_000;
    now.store(t, Ordering::SeqCst);
    d.observe("a", &call(t, "crm", "get", "crm.example"));
    now.store(t + H - 60_000, Ordering::SeqCst);
    assert_eq!(d.check_idle(), 0, "active 59 min ago");
    now.store(t + H + 60_000, Ordering::SeqCst);
    assert_eq!(d.check_idle(), 1, "idle again");
    let id = sink.0.lock().unwrap()[1].0.id.clone();
    assert!(
        d.mark_benign("a", &id),
        "an idle alert can be marked benign"
    );
}

#[test]
fn without_idle_after_or_with_the_detector_off_no_idle_alert() {
    let (d, sink) = engine(DetectionPolicy::default(), None);
    d.preload("a");
    assert_eq!(d.check_idle(), 0, "idle_after unset: never");
    let mut policy = DetectionPolicy {
        idle_after: Some(std::time::Duration::from_secs(1)),
        ..DetectionPolicy::default()
    };
    policy.detectors[DetectorKind::Idle as usize].enabled = false;
    let (d, _) = engine(policy, None);
    d.preload("a");
    assert_eq!(d.check_idle(), 0, "the idle detector is off");
    assert!(sink.0.lock().unwrap().is_empty());
}
