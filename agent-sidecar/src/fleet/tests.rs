use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use super::*;
use crate::events::{ActionEvent, ActionSink, EventBus};

#[derive(Default)]
struct Fake {
    on: AtomicBool,
    log: Mutex<Vec<String>>,
}

impl Stopper for Fake {
    fn stopped(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }
    fn stop(&self, reason: &str) {
        self.on.store(true, Ordering::SeqCst);
        self.log.lock().unwrap().push(format!("stop {reason}"));
    }
    fn resume(&self, by: &str, reason: &str) -> Result<(), String> {
        self.on.store(false, Ordering::SeqCst);
        self.log
            .lock()
            .unwrap()
            .push(format!("resume {by}: {reason}"));
        Ok(())
    }
}

#[derive(Default)]
struct Steps(Mutex<Vec<String>>);

impl ActionSink for Steps {
    fn consume(&self, event: ActionEvent<'_>) {
        if let ActionEvent::KillSwitch(k) = event {
            let v = serde_json::to_value(k).unwrap();
            self.0.lock().unwrap().push(format!(
                "{} {}",
                v["step"].as_str().unwrap(),
                v["switch"]["id"].as_str().unwrap_or("-")
            ));
        }
    }
}

fn payments() -> FleetIdentity {
    FleetIdentity {
        agent_id: "refund-bot".into(),
        instance_id: "payments.refund-bot-0".into(),
        team: Some("payments".into()),
        roles: vec!["refunder".into()],
        environment: "prod".into(),
    }
}

fn open(
    file: &std::path::Path,
    state: &std::path::Path,
    who: FleetIdentity,
) -> (KillSwitches, Arc<Fake>, Arc<Steps>) {
    let fake = Arc::new(Fake::default());
    let steps = Arc::new(Steps::default());
    let bus = EventBus::new(vec![steps.clone() as Arc<dyn ActionSink>]);
    let ks = KillSwitches::open(
        who,
        Some(file.to_path_buf()),
        Some(state),
        fake.clone(),
        Arc::new(bus),
    )
    .unwrap();
    (ks, fake, steps)
}

#[test]
fn scopes_cover_exactly_their_agents() {
    let who = payments();
    for (scope, covers) in [
        ("agent=refund-bot", true),
        ("agent=refund-bot-2", false),
        ("instance=payments.refund-bot-0", true),
        ("team=payments", true),
        ("team=Payments", false),
        ("team=support", false),
        ("role=refunder", true),
        ("role=reader", false),
        ("environment=prod", true),
        ("environment=staging", false),
        ("fleet", true),
    ] {
        let s = Scope::parse(scope).unwrap();
        assert_eq!(s.covers(&who), covers, "{scope}");
    }
    let no_team = FleetIdentity {
        team: None,
        ..payments()
    };
    assert!(!Scope::Team(String::new()).covers(&no_team));
    for bad in ["team", "team=", "squad=x", ""] {
        assert!(Scope::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_file_is_strict_and_says_where_it_is_wrong() {
    let p = std::path::Path::new("controls.yaml");
    let ok = Controls::parse(
        p,
        "kill_switches:\n  - id: ks-1\n    scope: {team: payments}\n    reason: fraud\n  - id: ks-2\n    scope: {fleet: true}\n    reason: incident\n",
    )
    .unwrap();
    assert_eq!(ok.kill_switches[0].scope, Scope::Team("payments".into()));
    assert_eq!(ok.kill_switches[1].scope, Scope::Fleet(true));
    assert!(Controls::parse(p, "").unwrap().kill_switches.is_empty());
    for (bad, says) in [
        (
            "kill_switches:\n  - id: ks-1\n    scope: {squad: x}\n    reason: r\n",
            "squad",
        ),
        (
            "kill_switches:\n  - id: ks-1\n    scope: {team: a}\n    reason: ''\n",
            "no reason",
        ),
        (
            "kill_switches:\n  - id: a/b\n    scope: {team: a}\n    reason: r\n",
            "id `a/b`",
        ),
        (
            "kill_switches:\n  - {id: a, scope: {team: a}, reason: r}\n  - {id: a, scope: {team: b}, reason: r}\n",
            "twice",
        ),
        (
            "kill_switches:\n  - {id: a, scope: {fleet: false}, reason: r}\n",
            "stops nobody",
        ),
        ("kill_switch: []\n", "kill_switch"),
    ] {
        let e = Controls::parse(p, bad).unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn a_switch_in_the_file_stops_the_agent_and_removing_it_lets_it_go() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("controls.yaml");
    std::fs::write(&file, "kill_switches: []\n").unwrap();
    let (ks, fake, steps) = open(&file, dir.path(), payments());
    assert!(!ks.engaged() && !fake.stopped());
    std::fs::write(
        &file,
        "kill_switches:\n  - {id: ks-other, scope: {team: support}, reason: other team}\n",
    )
    .unwrap();
    assert!(ks.reload());
    assert!(!fake.stopped(), "another team's switch");
    std::fs::write(
        &file,
        "kill_switches:\n  - {id: ks-pay, scope: {team: payments}, reason: refunds to mules, by: soc}\n",
    )
    .unwrap();
    assert!(ks.reload());
    assert!(ks.engaged() && fake.stopped());
    assert!(
        fake.log.lock().unwrap()[0]
            .contains("kill switch `ks-pay` (team=payments): refunds to mules")
    );
    // A broken file keeps the switch (fail closed), once per error.
    std::fs::write(&file, "kill_switches: [\n").unwrap();
    assert!(!ks.reload());
    assert!(!ks.reload());
    assert!(ks.engaged() && fake.stopped());
    assert!(ks.file_error().is_some());
    std::fs::remove_file(&file).unwrap();
    assert!(!ks.reload());
    assert!(ks.engaged(), "a vanished file keeps the switch");
    // Someone lets the agent go while the switch is in force: stopped again.
    fake.resume("operator", "quarantine release").unwrap();
    ks.reconcile(None, None);
    assert!(fake.stopped());
    std::fs::write(&file, "kill_switches: []\n").unwrap();
    assert!(ks.reload());
    assert!(!ks.engaged() && !fake.stopped());
    assert_eq!(
        *steps.0.lock().unwrap(),
        [
            "engaged ks-pay",
            "controls_refused -",
            "controls_refused -",
            "released -"
        ]
    );
}

#[test]
fn the_watch_skips_an_unchanged_file_but_sees_every_kind_of_write() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("controls.yaml");
    let none = "kill_switches: []\n";
    let pay = "kill_switches:\n  - {id: ks-pay, scope: {team: payments}, reason: incident}\n";
    let sup = "kill_switches:\n  - {id: ks-sup, scope: {team: support}, reason: incidents}\n";
    std::fs::write(&file, none).unwrap();
    let (ks, fake, _) = open(&file, dir.path(), payments());
    assert!(!ks.reload_if_changed(false), "first look: read, unchanged");
    assert!(!ks.reload_if_changed(false), "same stat: not read");
    // An atomic replace (a new inode), as a control plane or a ConfigMap
    // symlink swap writes it.
    let tmp = dir.path().join("controls.tmp");
    std::fs::write(&tmp, pay).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    assert!(ks.reload_if_changed(false));
    assert!(fake.stopped());
    // A rewrite in place of the same size (same inode).
    assert_eq!(pay.len(), sup.len());
    std::thread::sleep(std::time::Duration::from_millis(5));
    std::fs::write(&file, sup).unwrap();
    assert!(ks.reload_if_changed(false), "an in-place rewrite is seen");
    assert!(!ks.engaged());
    // A forced read finds nothing new.
    assert!(!ks.reload_if_changed(true));
}

#[test]
fn releasing_a_switch_never_releases_a_quarantine_it_did_not_cause() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("controls.yaml");
    std::fs::write(&file, "kill_switches: []\n").unwrap();
    let (ks, fake, _) = open(&file, dir.path(), payments());
    fake.stop("tier 4 halt");
    std::fs::write(
        &file,
        "kill_switches:\n  - {id: ks-1, scope: {fleet: true}, reason: incident}\n",
    )
    .unwrap();
    ks.reload();
    std::fs::write(&file, "kill_switches: []\n").unwrap();
    ks.reload();
    assert!(fake.stopped(), "the halt's quarantine stays");
}

#[test]
fn a_local_switch_survives_a_restart_and_needs_an_approver_to_release() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("controls.yaml");
    std::fs::write(
        &file,
        "kill_switches:\n  - {id: ks-file, scope: {team: support}, reason: other}\n",
    )
    .unwrap();
    let (ks, fake, _) = open(&file, dir.path(), payments());
    let sw = |id: &str, scope: Scope| KillSwitch {
        id: id.into(),
        scope,
        reason: "suspicious refunds".into(),
        by: Some("soc".into()),
        at: None,
    };
    let e = ks
        .trip_local(sw("ks-x", Scope::Team("support".into())))
        .unwrap_err();
    assert!(e.to_string().contains("does not cover"), "{e}");
    assert!(matches!(
        ks.trip_local(sw("ks-file", Scope::Agent("refund-bot".into()))),
        Err(LocalError::Duplicate(_))
    ));
    ks.trip_local(sw("ks-local", Scope::Agent("refund-bot".into())))
        .unwrap();
    assert!(fake.stopped());
    drop(ks);
    // Restart: the switch is read back and stops the agent at once.
    let (ks, fake, _) = open(&file, dir.path(), payments());
    assert!(ks.engaged() && fake.stopped());
    assert!(matches!(
        ks.release_local("ks-file", "lead", "ok"),
        Err(LocalError::FromFile(_))
    ));
    assert!(matches!(
        ks.release_local("ks-local", "", "ok"),
        Err(LocalError::Invalid(_))
    ));
    assert!(matches!(
        ks.release_local("ks-nope", "lead", "ok"),
        Err(LocalError::Unknown(_))
    ));
    ks.release_local("ks-local", "lead@example.com", "false alarm")
        .unwrap();
    assert!(!fake.stopped());
    assert!(
        fake.log
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .contains("lead@example.com: false alarm")
    );
    let (ks, fake, _) = open(&file, dir.path(), payments());
    assert!(!ks.engaged() && !fake.stopped(), "released for good");
}

#[test]
fn a_sidecar_does_not_start_without_knowing_its_switches() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("controls.yaml");
    let bus: Arc<dyn KillSwitchSink> = Arc::new(EventBus::default());
    let fake: Arc<dyn Stopper> = Arc::new(Fake::default());
    let e = KillSwitches::open(
        payments(),
        Some(file.clone()),
        None,
        fake.clone(),
        bus.clone(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("kill_switches: []"), "{e}");
    std::fs::write(&file, "kill_switches: nope\n").unwrap();
    assert!(
        KillSwitches::open(
            payments(),
            Some(file.clone()),
            None,
            fake.clone(),
            bus.clone()
        )
        .is_err()
    );
    std::fs::write(&file, "").unwrap();
    std::fs::write(dir.path().join("kill-switches.json"), "{broken").unwrap();
    let e = KillSwitches::open(payments(), Some(file), Some(dir.path()), fake, bus)
        .err()
        .unwrap();
    assert!(e.to_string().contains("unreadable"), "{e}");
}
