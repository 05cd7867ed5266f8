//! Fault: the tier policy replaced by a broken one while the agent's calls
//! keep coming. The reload fails, the last-known-good set stays in force
//! (every call during and after is decided by it: nothing refused that it
//! allows, nothing let through that it refuses), a log line says so and
//! the metrics count it; a fixed file is taken at the next reload.
//!
//! Runs without root: the gateway is wired as `run` wires it, minus the
//! kernel (see `agent_sidecar_test_support::sidecar::gateway`).

use std::{
    io::Write,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use agent_sidecar::policy::ReloadOutcome;
use agent_sidecar_test_support::{
    curl::curl,
    sidecar::gateway::{Harness, Options},
};

fn log_lines() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(move || SharedWriter(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The value of the metric line starting with `prefix` (0 when absent).
fn metric(h: &Harness, prefix: &str) -> f64 {
    h.metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_policy_during_load_keeps_the_last_good_set_with_a_line_and_a_metric() {
    let log = log_lines();
    let h = Arc::new(Harness::start(Options::default()).await);
    let version = h.policy.current().version().clone();
    let successes = metric(&h, "agent_sidecar_policy_reload_total{result=\"success\"}");

    // Load: tier-1 calls (allowed) and a refused route, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (h, stop) = (h.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (ok, _) = curl(&h.explicit_args(), &[&h.url("/v1/invoices")]).await;
                let (denied, _) =
                    curl(&h.explicit_args(), &[&h.url("/v1/accounts/1/secrets")]).await;
                seen.push((ok, denied));
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The base document replaced, in place, by one that does not parse.
    let base = h.policy_dir.join("base.yaml");
    let good = std::fs::read_to_string(&base).expect("base.yaml");
    std::fs::write(&base, "kind: base\nrules: [unclosed\n").expect("write");
    let outcome = h.policy.reload();
    assert!(
        matches!(outcome, ReloadOutcome::Failed(_)),
        "a broken set is not taken: {outcome:?}"
    );
    assert_eq!(
        h.policy.current().version(),
        &version,
        "the last-known-good set stays in force"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Fixed again: taken at the next reload.
    std::fs::write(&base, format!("{good}\n# fixed\n")).expect("write");
    let outcome = h.policy.reload();
    assert!(
        matches!(outcome, ReloadOutcome::Updated(_)),
        "the fixed set is taken: {outcome:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = load.await.expect("load");

    assert!(seen.len() >= 3, "the load ran through the fault: {seen:?}");
    assert!(
        seen.iter().all(|&(ok, denied)| ok == 200 && denied == 403),
        "every call decided by a good set, none refused or let through by the broken one: {seen:?}"
    );
    assert_eq!(
        metric(&h, "agent_sidecar_policy_reload_total{result=\"failure\"}"),
        1.0,
        "{}",
        h.metrics.render()
    );
    assert_eq!(
        metric(&h, "agent_sidecar_policy_reload_total{result=\"success\"}"),
        successes + 1.0,
        "the fixed set's reload"
    );
    assert_eq!(metric(&h, "agent_sidecar_policy_last_reload_success"), 1.0);
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("policy reload failed; the last-known-good set stays in force"))
        .unwrap_or_else(|| panic!("a log line for the failed reload:\n{text}"));
    assert!(line.contains("WARN") || line.contains("ERROR"), "{line}");
    assert!(
        text.contains("base.yaml"),
        "the line names the file:\n{text}"
    );
}
