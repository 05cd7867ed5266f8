//! Sets caught half-way through an update are never put in force.

use crate::metrics::Metrics;
use std::{
    io::Write,
    os::unix::fs::symlink,
    sync::atomic::{AtomicBool, AtomicU8, Ordering},
    time::Instant,
};

use super::*;
use crate::policy::{
    manifest::MANIFEST_FILE,
    test_support::{BASE, TEAM},
};

/// A payment of 600: tier 2 by `pay.medium` of [`BASE`].
fn pay_600() -> Action {
    let attrs = Attributes {
        amount: Some(crate::policy::Money {
            value: 600.0,
            currency: None,
        }),
        ..Attributes::default()
    };
    action("bot", "prod", "erp", "pay", attrs)
}

/// [`BASE`] cut right before its rules: it parses and compiles.
fn base_head() -> &'static str {
    &BASE[..BASE.find("rules:").unwrap()]
}

fn write_base_set(dir: &Path) {
    std::fs::write(dir.join("org.yaml"), BASE).unwrap();
    std::fs::write(dir.join("fin.yaml"), TEAM).unwrap();
    std::fs::write(dir.join("bot.yaml"), AGENT).unwrap();
}

fn sha256sums(dir: &Path) -> String {
    let snapshot = Snapshot::read_dir(dir).unwrap();
    snapshot
        .files
        .iter()
        .map(|f| {
            let d: String = Sha256::digest(f.text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{d}  {}\n", f.path)
        })
        .collect()
}

#[test]
fn a_set_written_in_place_may_add_but_never_take_away() {
    let dir = temp_dir("in-place");
    write_base_set(&dir);
    let metrics = Arc::new(Metrics::new());
    let store = PolicyStore::open(&dir, StoreOptions::default(), Some(metrics.clone())).unwrap();
    let good = store.current().version().clone();
    assert_eq!(store.decide(&pay_600()).tier, Tier::Supervised);

    // The first of two writes: everything but the rules. It compiles.
    std::fs::write(dir.join("org.yaml"), base_head()).unwrap();
    let ReloadOutcome::Refused(r) = store.reload() else {
        panic!("a set without its rules was put in force")
    };
    let text = r.to_string();
    assert!(text.contains("- rule pay.medium"), "{text}");
    assert!(text.contains("help: publish removals"), "{text}");
    assert_eq!(store.current().version(), &good);
    assert_eq!(store.decide(&pay_600()).tier, Tier::Supervised);
    assert!(store.last_refusal().is_some());
    // Polling the same files again does not count it again.
    assert!(matches!(store.reload(), ReloadOutcome::Unchanged));

    // Cut mid-list: one rule of three.
    let cut = &BASE[..BASE.find("  - id: pay.large").unwrap()];
    std::fs::write(dir.join("org.yaml"), cut).unwrap();
    assert!(matches!(store.reload(), ReloadOutcome::Refused(_)));
    // Truncated to zero bytes, deleted.
    std::fs::write(dir.join("org.yaml"), "").unwrap();
    assert!(!matches!(store.reload(), ReloadOutcome::Updated(_)));
    std::fs::remove_file(dir.join("fin.yaml")).unwrap();
    assert!(!matches!(store.reload(), ReloadOutcome::Updated(_)));
    assert_eq!(store.current().version(), &good);

    // The second write completes the file, with a rule added: in force.
    std::fs::write(dir.join("fin.yaml"), TEAM).unwrap();
    let more = BASE.replace(
        "egress:\n",
        "  - id: crm.export\n    when: { tool: crm, action: export }\n    tier: 3\negress:\n",
    );
    std::fs::write(dir.join("org.yaml"), &more).unwrap();
    assert!(
        matches!(store.reload(), ReloadOutcome::Updated(_)),
        "{:?}",
        store.last_refusal()
    );
    assert!(store.last_refusal().is_none());
    // A raised tier is fine in place; lowering it back is not, until it is
    // published atomically.
    let raised = more.replace(
        "amount: { gte: 500 } }\n    tier: 2",
        "amount: { gte: 500 } }\n    tier: 3",
    );
    std::fs::write(dir.join("org.yaml"), &raised).unwrap();
    assert!(matches!(store.reload(), ReloadOutcome::Updated(_)));
    assert_eq!(store.decide(&pay_600()).tier, Tier::Approval);
    std::fs::write(dir.join("org.yaml"), &more).unwrap();
    assert!(matches!(store.reload(), ReloadOutcome::Refused(_)));
    assert!(matches!(
        store.reload_after(Writes::Atomic),
        ReloadOutcome::Updated(_)
    ));
    assert_eq!(store.decide(&pay_600()).tier, Tier::Supervised);

    let text = metrics.render();
    assert!(
        text.contains(
            "agent_sidecar_policy_reload_refused_total{reason=\"in_place_takes_away\"} 3"
        ),
        "{text}"
    );
    assert!(
        text.contains("agent_sidecar_policy_reload_total{result=\"refused\"} 3"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_manifest_must_match_before_a_set_is_accepted() {
    let dir = temp_dir("manifest");
    write_base_set(&dir);
    std::fs::write(dir.join(MANIFEST_FILE), sha256sums(&dir)).unwrap();
    let metrics = Arc::new(Metrics::new());
    let store = PolicyStore::open(&dir, StoreOptions::default(), Some(metrics.clone())).unwrap();
    let good = store.current().version().clone();

    // A new version, files first: refused until the manifest names them
    // (even when the files alone would only add).
    std::fs::write(
        dir.join("fin.yaml"),
        TEAM.replace("gt: 25000 } }\n    tier: 3", "gt: 25000 } }\n    tier: 4"),
    )
    .unwrap();
    let ReloadOutcome::Refused(r) = store.reload() else {
        panic!("a set that does not match its manifest was put in force")
    };
    assert!(r.to_string().contains("`fin.yaml` has sha256"), "{r}");
    assert_eq!(store.current().version(), &good);
    // The manifest written last vouches for the set, even one that takes
    // rules away, written in place.
    std::fs::write(dir.join("org.yaml"), base_head()).unwrap();
    std::fs::write(dir.join(MANIFEST_FILE), sha256sums(&dir)).unwrap();
    assert!(matches!(store.reload(), ReloadOutcome::Updated(_)));
    assert_eq!(store.decide(&pay_600()).tier, Tier::Autonomous);
    // A manifest cut short does not vouch for anything.
    let full = sha256sums(&dir);
    std::fs::write(dir.join("org.yaml"), BASE).unwrap();
    let first_line = full.lines().next().unwrap();
    std::fs::write(dir.join(MANIFEST_FILE), first_line).unwrap();
    assert!(matches!(store.reload(), ReloadOutcome::Refused(_)));
    let text = metrics.render();
    assert!(
        text.contains("agent_sidecar_policy_reload_refused_total{reason=\"manifest_mismatch\"} 2"),
        "{text}"
    );
    // A store does not start on a set its manifest does not vouch for.
    let e = PolicyStore::open(&dir, StoreOptions::default(), None)
        .err()
        .expect("mismatch");
    assert!(matches!(e, CompileError::Manifest(_)), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs the watcher over `store` on a runtime of its own.
struct Watching {
    _handle: WatchHandle,
    _rt: tokio::runtime::Runtime,
}

fn watching(store: &Arc<PolicyStore>) -> Watching {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let options = WatchOptions {
        debounce: Duration::from_millis(50),
        poll_interval: Duration::from_secs(3600),
        ..WatchOptions::default()
    };
    let handle = rt
        .block_on(async { watch(store.clone(), options) })
        .unwrap();
    Watching {
        _handle: handle,
        _rt: rt,
    }
}

fn wait_for(what: &str, f: &dyn Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

#[test]
fn the_watcher_never_puts_a_file_caught_between_two_writes_in_force() {
    let dir = temp_dir("two-writes");
    write_base_set(&dir);
    let store = Arc::new(PolicyStore::open(&dir, StoreOptions::default(), None).unwrap());
    let _w = watching(&store);
    let done = Arc::new(AtomicBool::new(false));
    let lowest = Arc::new(AtomicU8::new(u8::MAX));
    let decider = {
        let (store, done, lowest) = (store.clone(), done.clone(), lowest.clone());
        std::thread::spawn(move || {
            let a = pay_600();
            while !done.load(Ordering::Relaxed) {
                lowest.fetch_min(store.decide(&a).tier.rank(), Ordering::Relaxed);
            }
        })
    };
    let rest = &BASE[base_head().len()..];
    for gap in [50, 300, 1000] {
        let gap = Duration::from_millis(gap);
        // One open, two writes.
        let mut f = std::fs::File::create(dir.join("org.yaml")).unwrap();
        f.write_all(base_head().as_bytes()).unwrap();
        f.flush().unwrap();
        std::thread::sleep(gap);
        f.write_all(rest.as_bytes()).unwrap();
        drop(f);
        // Two opens: truncate and write, then append.
        std::fs::write(dir.join("org.yaml"), base_head()).unwrap();
        std::thread::sleep(gap);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("org.yaml"))
            .unwrap();
        f.write_all(rest.as_bytes()).unwrap();
        drop(f);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Editors' backup and swap files are not policy files.
    for junk in [".org.yaml.swp", "org.yaml~", ".#org.yaml", "4913"] {
        std::fs::write(dir.join(junk), "kind: base\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    decider.join().unwrap();
    assert_eq!(
        lowest.load(Ordering::Relaxed),
        Tier::Supervised.rank(),
        "a payment of 600 was decided without pay.medium"
    );
    assert!(store.last_error().is_none());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn atomic_updates_are_in_force_fast() {
    let dir = temp_dir("atomic");
    write_base_set(&dir);
    let store = Arc::new(PolicyStore::open(&dir, StoreOptions::default(), None).unwrap());
    let _w = watching(&store);
    // A file renamed into place, taking a rule away.
    let lower = BASE.replace(
        "amount: { gte: 500 } }\n    tier: 2",
        "amount: { gte: 900 } }\n    tier: 2",
    );
    std::fs::write(dir.join(".org.yaml.tmp"), &lower).unwrap();
    std::fs::rename(dir.join(".org.yaml.tmp"), dir.join("org.yaml")).unwrap();
    let took = wait_for("the renamed file", &|| {
        store.decide(&pay_600()).tier == Tier::Autonomous
    });
    eprintln!("rename into place in force after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(store.last_refusal().is_none());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_configmap_symlink_swap_and_a_replaced_directory_are_followed() {
    let root = temp_dir("configmap");
    let dir = root.join("policy");
    let data = |n: u8, base: &str| {
        let d = dir.join(format!("..2026_12_03_0{n}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("org.yaml"), base).unwrap();
        std::fs::write(d.join("fin.yaml"), TEAM).unwrap();
        std::fs::write(d.join("bot.yaml"), AGENT).unwrap();
        d
    };
    data(1, BASE);
    symlink("..2026_12_03_01", dir.join("..data")).unwrap();
    for f in ["org.yaml", "fin.yaml", "bot.yaml"] {
        symlink(format!("..data/{f}"), dir.join(f)).unwrap();
    }
    let store = Arc::new(PolicyStore::open(&dir, StoreOptions::default(), None).unwrap());
    let _w = watching(&store);
    assert_eq!(store.decide(&pay_600()).tier, Tier::Supervised);

    // The kubelet's update: a new timestamped directory, a `..data_tmp`
    // symlink to it renamed over `..data`, the old directory removed.
    let lower = BASE.replace(
        "amount: { gte: 500 } }\n    tier: 2",
        "amount: { gte: 900 } }\n    tier: 2",
    );
    data(2, &lower);
    symlink("..2026_12_03_02", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_12_03_01")).unwrap();
    let took = wait_for("the swapped set", &|| {
        store.decide(&pay_600()).tier == Tier::Autonomous
    });
    eprintln!("ConfigMap symlink swap in force after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(store.last_refusal().is_none());

    // The whole directory replaced by a rename.
    let next = root.join("policy.next");
    std::fs::create_dir_all(&next).unwrap();
    std::fs::write(next.join("org.yaml"), BASE).unwrap();
    std::fs::write(next.join("fin.yaml"), TEAM).unwrap();
    std::fs::write(next.join("bot.yaml"), AGENT).unwrap();
    std::fs::rename(&dir, root.join("policy.old")).unwrap();
    std::fs::rename(&next, &dir).unwrap();
    wait_for("the replaced directory", &|| {
        store.decide(&pay_600()).tier == Tier::Supervised
    });
    // And the new directory is watched: a rename into place in it.
    std::fs::write(dir.join(".org.yaml.tmp"), &lower).unwrap();
    std::fs::rename(dir.join(".org.yaml.tmp"), dir.join("org.yaml")).unwrap();
    wait_for("a change in the replaced directory", &|| {
        store.decide(&pay_600()).tier == Tier::Autonomous
    });
    std::fs::remove_dir_all(root).unwrap();
}
