//! Policy hot reload under a live gateway with a real TLS tool API and
//! curl as the agent: a policy file rewritten in place is never in force
//! half-written, whatever the gap between the writes, and an atomic
//! update (a rename into place) is in force within a fraction of a second.

use std::{
    io::Write,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agent_sidecar::policy::{WatchOptions, watch};
use agent_sidecar_test_support::sidecar::gateway::{Harness, Options};
use serde_json::json;
use tokio::process::Command;

/// Runs curl; returns the status.
async fn curl(args: &[String], extra: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--max-time",
            "30",
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .args(extra)
        .output()
        .await
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Writes `text` next to `path` and renames it into place.
fn rename_into_place(path: &Path, text: &str) {
    let tmp = path.with_file_name(".base.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_rewritten_in_place_never_lets_a_denied_call_through() {
    let h = Harness::start(Options::default()).await;
    let _watch = watch(h.policy.clone(), WatchOptions::default()).expect("watch");
    let base_path = h.dir.0.join("policy/base.yaml");
    let original = std::fs::read_to_string(&base_path).unwrap();

    // An atomic update: the mass delete becomes a plain deny (no
    // quarantine, so every later attempt is decided by the rules).
    let base = original.replace("tier: 4\n    quarantine: true\n", "tier: deny\n");
    assert_ne!(base, original);
    let before = h.policy.current().version().clone();
    let start = Instant::now();
    rename_into_place(&base_path, &base);
    while h.policy.current().version() == &before {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the renamed file is not in force"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let atomic = start.elapsed();
    eprintln!("rename into place in force after {atomic:?}");
    assert!(atomic < Duration::from_secs(1), "{atomic:?}");

    // The agent tries denied calls without pause: a REST DELETE and an MCP
    // tools/call, while base.yaml is rewritten in place in two writes,
    // rules last.
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let agent = {
        let (stop, attempts) = (stop.clone(), attempts.clone());
        let args = h.explicit_args();
        let (rest, mcp) = (h.url("/v1/vendors"), h.url("/mcp"));
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "delete_customer", "arguments": {"customer_id": "c-1"}}})
        .to_string();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                curl(&args, &["-X", "DELETE", &rest]).await;
                let headers = [
                    "content-type: application/json",
                    "accept: application/json, text/event-stream",
                ];
                curl(
                    &args,
                    &[
                        "-X", "POST", "-H", headers[0], "-H", headers[1], "-d", &call, &mcp,
                    ],
                )
                .await;
                attempts.fetch_add(2, Ordering::Relaxed);
            }
        })
    };
    let split = base.find("rules:\n").unwrap();
    let (head, rules) = base.split_at(split);
    for gap_ms in [50u64, 300, 1000, 2000] {
        let gap = Duration::from_millis(gap_ms);
        let path = base_path.clone();
        let (head, rules) = (head.to_string(), rules.to_string());
        tokio::task::spawn_blocking(move || {
            // One open, two writes.
            let mut f = std::fs::File::create(&path).unwrap();
            f.write_all(head.as_bytes()).unwrap();
            f.flush().unwrap();
            std::thread::sleep(gap);
            f.write_all(rules.as_bytes()).unwrap();
            drop(f);
            std::thread::sleep(Duration::from_millis(300));
            // Two opens: truncate and write, then append.
            std::fs::write(&path, &head).unwrap();
            std::thread::sleep(gap);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(rules.as_bytes()).unwrap();
            drop(f);
            std::thread::sleep(Duration::from_millis(300));
            // Deleted, then recreated.
            std::fs::remove_file(&path).unwrap();
            std::thread::sleep(gap);
            std::fs::write(&path, &head).unwrap();
            std::fs::write(&path, format!("{head}{rules}")).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        })
        .await
        .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    agent.await.unwrap();
    let tries = attempts.load(Ordering::Relaxed);
    assert!(tries >= 20, "only {tries} attempts");
    let through: Vec<_> = h
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" || r.body.contains("delete_customer"))
        .collect();
    assert!(
        through.is_empty(),
        "{} of {tries} denied calls reached the tool: {through:?}",
        through.len()
    );
    // The set in force is the complete one, and allowed calls go through.
    assert_eq!(std::fs::read_to_string(&base_path).unwrap(), base);
    assert_eq!(
        curl(&h.explicit_args(), &[&h.url("/v1/invoices")]).await,
        200
    );
    assert_eq!(
        curl(&h.explicit_args(), &["-X", "DELETE", &h.url("/v1/vendors")]).await,
        403
    );
}

/// Runs the real CLI; returns its exit code, stdout and stderr.
async fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .args(args)
        .output()
        .await
        .expect("agent-sidecar runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rolls_a_bad_push_back_with_the_cli_and_the_watch_takes_the_next_change() {
    let h = Harness::start(Options::default()).await;
    let _watch = watch(h.policy.clone(), WatchOptions::default()).expect("watch");
    let token = "a-token-for-the-rollback-test";
    let url = h.admin(token).await;
    let token_file = h.dir.0.join("admin.token");
    std::fs::write(&token_file, token).unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let conn = ["--url", &url, "--token-file", token_file.to_str().unwrap()];

    let base_path = h.dir.0.join("policy/base.yaml");
    let original = std::fs::read_to_string(&base_path).unwrap();
    let good = h.policy.current().version().clone();
    let pushed = original.replace("tier: 4\n    quarantine: true\n", "tier: deny\n");
    rename_into_place(&base_path, &pushed);
    let start = Instant::now();
    while h.policy.current().version() == &good {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "push not in force"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let bad = h.policy.current().version().clone();

    let mut args = vec!["policy", "versions"];
    args.extend_from_slice(&conn);
    let (code, stdout, stderr) = cli(&args).await;
    assert_eq!(code, 0, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed["current"]["hash"], bad.hash.as_ref(), "{stdout}");
    assert_eq!(listed["kept"][0]["hash"], good.hash.as_ref(), "{stdout}");

    // Unknown versions, too-short prefixes and a missing reason are refused.
    for (version, expected) in [("deadbeef", 1), ("ab", 1)] {
        let mut args = vec!["policy", "rollback", version, "--operator", "alice"];
        args.extend_from_slice(&["--reason", "bad push"]);
        args.extend_from_slice(&conn);
        let (code, _, stderr) = cli(&args).await;
        assert_eq!(code, expected, "{stderr}");
        assert!(stderr.contains("no kept or archived version"), "{stderr}");
    }
    let mut args = vec!["policy", "rollback", &good.hash[..8], "--operator", "alice"];
    args.extend_from_slice(&conn);
    let (code, _, stderr) = cli(&args).await;
    assert_eq!(code, 2, "--reason is required: {stderr}");
    assert_eq!(h.policy.current().version(), &bad);

    let mut args = vec!["policy", "rollback", &good.hash[..8], "--operator", "alice"];
    args.extend_from_slice(&["--reason", "bad push"]);
    args.extend_from_slice(&conn);
    let (code, stdout, stderr) = cli(&args).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(good.hash.as_ref()), "{stdout}");
    assert_eq!(h.policy.current().version(), &good, "rolled back at once");

    // The next change of the directory is in force again.
    let next = original.replace("tier: 4\n    quarantine: true\n", "tier: 3\n");
    assert_ne!(next, original);
    rename_into_place(&base_path, &next);
    let start = Instant::now();
    while h.policy.current().version() == &good {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "next push not in force"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_ne!(h.policy.current().version(), &bad);
}
