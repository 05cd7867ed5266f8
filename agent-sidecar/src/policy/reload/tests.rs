use crate::metrics::Metrics;
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sha2::{Digest, Sha256};

use super::*;
use crate::policy::{
    Action, CompileError, Snapshot,
    action::Attributes,
    test_support::{AGENT, BASE, action},
    tier::Tier,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("policy-reload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a set whose label and team rule tier go together: label `tN`,
/// every ERP read at tier N (N = 1 or 2).
fn write_set(dir: &Path, n: u8) {
    std::fs::write(
        dir.join("org.yaml"),
        BASE.replace("label: test-1", &format!("label: t{n}")),
    )
    .unwrap();
    let team = format!(
        "kind: team\nname: fin\nrules:\n  - id: fin.read\n    when: {{ tool: erp, action: read }}\n    tier: {n}\n"
    );
    std::fs::write(dir.join("fin.yaml"), team).unwrap();
    std::fs::write(dir.join("bot.yaml"), AGENT).unwrap();
}

fn read() -> Action {
    action("bot", "prod", "erp", "read", Attributes::default())
}

mod partial;

#[test]
fn a_store_never_starts_without_a_valid_set() {
    let dir = temp_dir("open");
    std::fs::write(dir.join("org.yaml"), "kind: base\nname: a\n").unwrap();
    let e = PolicyStore::open(&dir, StoreOptions::default(), None)
        .err()
        .expect("invalid set");
    assert!(e.to_string().contains("missing field `label`"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_failed_reload_keeps_the_last_known_good_set_and_says_so() {
    let dir = temp_dir("keep");
    write_set(&dir, 1);
    let metrics = Arc::new(Metrics::new());
    let store = PolicyStore::open(&dir, StoreOptions::default(), Some(metrics.clone())).unwrap();
    let good = store.current().version().clone();
    assert!(matches!(store.reload(), ReloadOutcome::Unchanged));

    std::fs::write(
        dir.join("fin.yaml"),
        "kind: team\nname: fin\nrules:\n  - id: x\n    tier: 9\n",
    )
    .unwrap();
    let ReloadOutcome::Failed(e) = store.reload() else {
        panic!("expected a failure")
    };
    assert!(
        e.to_string()
            .contains("fin.yaml:5:11: error: rules[0].tier: tier 9 does not exist"),
        "{e}"
    );
    assert_eq!(store.current().version(), &good);
    assert_eq!(store.decide(&read()).policy_version, good);
    assert!(store.last_error().is_some());
    // The same broken files are not compiled again on every poll.
    assert!(matches!(store.reload(), ReloadOutcome::Unchanged));
    let text = metrics.render();
    assert!(
        text.contains("agent_sidecar_policy_reload_total{result=\"failure\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("agent_sidecar_policy_last_reload_success 0"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "agent_sidecar_policy_version_info{{label=\"t1\",version=\"{}\"}} 1",
            good.short()
        )),
        "{text}"
    );

    write_set(&dir, 2);
    let ReloadOutcome::Updated(v) = store.reload() else {
        panic!("expected an update")
    };
    assert_eq!(v.label.as_ref(), "t2");
    assert!(store.last_error().is_none());
    let text = metrics.render();
    assert!(
        text.contains("agent_sidecar_policy_last_reload_success 1"),
        "{text}"
    );
    assert!(
        !text.contains("label=\"t1\""),
        "only the version in force is exported: {text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn previous_versions_can_be_rolled_back_from_memory_and_from_the_archive() {
    let dir = temp_dir("rollback");
    let archive = temp_dir("archive");
    write_set(&dir, 1);
    let options = StoreOptions {
        history: 2,
        archive_dir: Some(archive.clone()),
    };
    let store = PolicyStore::open(&dir, options.clone(), None).unwrap();
    let v1 = store.current().version().clone();
    write_set(&dir, 2);
    store.reload();
    assert_eq!(store.decide(&read()).tier, Tier::Supervised);
    assert_eq!(store.versions().len(), 2);

    assert_eq!(
        store.rollback(&format!("sha256:{}", v1.short())).unwrap(),
        v1
    );
    assert_eq!(store.decide(&read()).tier, Tier::Autonomous);
    // The directory did not change: the rollback stays in force.
    assert!(matches!(store.reload(), ReloadOutcome::Unchanged));
    assert_eq!(store.current().version(), &v1);
    assert!(matches!(
        store.rollback("zzzz"),
        Err(RollbackError::UnknownVersion(_))
    ));

    // A new store (after a restart) finds v1 in the archive.
    let fresh = PolicyStore::open(&dir, options, None).unwrap();
    assert_eq!(fresh.current().version().label.as_ref(), "t2");
    assert_eq!(fresh.rollback(&v1.hash[..8]).unwrap(), v1);
    assert!(archive.join(v1.hash.as_ref()).join("org.yaml").exists());
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(archive).unwrap();
}

#[test]
fn concurrent_decisions_never_see_a_half_loaded_set() {
    let dir = temp_dir("concurrent");
    write_set(&dir, 1);
    let store = Arc::new(PolicyStore::open(&dir, StoreOptions::default(), None).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let deciders: Vec<_> = (0..2)
        .map(|_| {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen = HashSet::new();
                let a = read();
                while !done.load(Ordering::Relaxed) {
                    let d = store.decide(&a);
                    // Label and tier come from the same documents' pair: a
                    // set mixing two versions would break this.
                    let expected = match d.policy_version.label.as_ref() {
                        "t1" => Tier::Autonomous,
                        "t2" => Tier::Supervised,
                        other => panic!("unexpected label {other}"),
                    };
                    assert_eq!(d.tier, expected, "{}", d.reason);
                    seen.insert(d.policy_version.hash.clone());
                }
                seen
            })
        })
        .collect();
    for i in 0..40u8 {
        match i % 3 {
            2 => std::fs::write(dir.join("fin.yaml"), "kind: team\nname: [\n").unwrap(),
            n => write_set(&dir, n + 1),
        }
        // Published as a whole each time (this is about swapping sets,
        // not about files caught half-way).
        store.reload_after(Writes::Atomic);
    }
    done.store(true, Ordering::Relaxed);
    let mut seen = HashSet::new();
    for d in deciders {
        seen.extend(d.join().expect("decider panicked"));
    }
    assert!(seen.len() >= 2, "decisions saw {} version(s)", seen.len());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_watcher_reloads_on_change_and_keeps_the_set_on_error() {
    let dir = temp_dir("watch");
    write_set(&dir, 1);
    let store = Arc::new(PolicyStore::open(&dir, StoreOptions::default(), None).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let options = WatchOptions {
        debounce: Duration::from_millis(50),
        poll_interval: Duration::from_secs(3600),
        ..WatchOptions::default()
    };
    let handle = rt
        .block_on(async { watch(store.clone(), options) })
        .unwrap();
    write_set(&dir, 2);
    wait_for("the new version", &|| {
        store.current().version().label.as_ref() == "t2"
    });
    std::fs::write(
        dir.join("org.yaml"),
        "kind: base\nname: acme\nlabel: t3\nbogus: 1\n",
    )
    .unwrap();
    wait_for("the error", &|| store.last_error().is_some());
    assert_eq!(store.current().version().label.as_ref(), "t2");
    drop(handle);
    std::fs::remove_dir_all(dir).unwrap();
}
