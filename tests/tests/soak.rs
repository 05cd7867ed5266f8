//! The soak: `cargo xtask soak --minutes N` runs this (`test = false`:
//! never part of `cargo test`)
//! with `SOAK_MINUTES` and `SOAK_OUT`. The gateway, wired as `run` wires it
//! minus the kernel, takes a steady mixed load for N minutes:
//!
//! - tier-1 REST calls (ten per curl, one kept connection) and MCP
//!   `tools/call`s, tier-2 REST and MCP calls (owner notices, compensations
//!   registered), tier-3 payments held and answered (approved or denied by
//!   an approver) or left to expire, a tier-4 call a minute (quarantine, SOC
//!   alert) released through the admin API;
//! - refusals: undeclared routes, and CONNECTs through the explicit proxy
//!   to hosts the allowlist does not name;
//! - a policy reload every minute (the file rewritten, the set recompiled).
//!
//! Each minute it writes a CSV row: RSS, open fds, live tokio tasks, calls,
//! errors the load did not cause, and the p50/p99 of the tier-1 calls as
//! curl measured them (one kept connection, so process start is not in
//! them); then an SVG plot of RSS, fds and tasks and of p50/p99. The DNS
//! resolver and the kernel's refusals need `agent-sidecar run` and are not
//! part of this in-process load.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use agent_sidecar_test_support::{
    ca::TestCa,
    sidecar::gateway::{Harness, Options},
    tool_api::{HOST, STREAM_PATH, ToolApi},
};
use serde_json::json;
use tokio::process::Command;

const ADMIN_TOKEN: &str = "a-soak-admin-token-of-some-length";

/// What the load counts.
#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    /// Answers the load did not ask for (a tier-1 call refused, a
    /// forwarded call failing, curl unable to connect).
    unexpected: AtomicU64,
}

/// One minute's row.
struct Row {
    minute: u32,
    rss_kib: u64,
    fds: u64,
    tasks: usize,
    calls: u64,
    unexpected: u64,
    p50_ms: f64,
    p99_ms: f64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs curl with `args`; returns (status, seconds) per transfer.
async fn curl_w(args: &[String]) -> Vec<(u16, f64)> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{time_total}\n"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (code, t) = l.split_once(' ')?;
            Some((code.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

fn args(h: &Harness, extra: &[&str]) -> Vec<String> {
    let mut a = h.explicit_args();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn mcp_args(h: &Harness, id: u64, tool: &str, arguments: serde_json::Value) -> Vec<String> {
    let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}});
    args(
        h,
        &[
            "-H",
            "content-type: application/json",
            "-H",
            "accept: application/json, text/event-stream",
            "-d",
            &call.to_string(),
            &h.url(STREAM_PATH),
        ],
    )
}

fn expect(counts: &Counts, got: &[(u16, f64)], want: &[u16], what: &str) {
    counts.calls.fetch_add(got.len() as u64, Ordering::Relaxed);
    for (code, _) in got {
        if !want.contains(code) {
            counts.unexpected.fetch_add(1, Ordering::Relaxed);
            eprintln!("soak: {what}: unexpected status {code}");
        }
    }
}

/// One round of the mixed load; returns the tier-1 latencies (seconds).
async fn round(h: &Harness, admin: &str, counts: &Counts, n: u64, quarantine: bool) -> Vec<f64> {
    let mut latencies = Vec::new();
    // Tier 1 REST, ten on one connection.
    let urls: Vec<String> = (0..10)
        .map(|i| h.url(&format!("/v1/invoices?limit={i}")))
        .collect();
    let mut a = h.explicit_args();
    a.extend(urls);
    let got = curl_w(&a).await;
    expect(counts, &got, &[200], "tier-1 REST");
    latencies.extend(got.iter().map(|(_, t)| *t));
    // Tier 1 and tier 2 MCP.
    let got = curl_w(&mcp_args(
        h,
        2 * n,
        "get_customer",
        json!({"customer_id": "c-1"}),
    ))
    .await;
    expect(counts, &got, &[200], "tier-1 MCP");
    latencies.extend(got.iter().map(|(_, t)| *t));
    let got = curl_w(&mcp_args(
        h,
        2 * n + 1,
        "update_customers",
        json!({"customer_ids": ["c-1"]}),
    ))
    .await;
    expect(counts, &got, &[200], "tier-2 MCP");
    // Tier 2 REST.
    let got = curl_w(&args(
        h,
        &[
            "-X",
            "PATCH",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"name": "ACME"}"#,
            &h.url("/v1/vendors/7"),
        ],
    ))
    .await;
    expect(counts, &got, &[200], "tier-2 REST");
    // Refused: an undeclared route, a host the allowlist does not name.
    let got = curl_w(&args(h, &[&h.url("/v1/accounts/1/secrets")])).await;
    expect(counts, &got, &[403], "deny");
    let got = curl_w(&args(h, &["https://not-allowed.example.test/"])).await;
    // curl reports the refused CONNECT as 403 (or 000 when it gives up).
    expect(counts, &got, &[403, 0], "denied connect");
    // Tier 3: one held payment, answered on every other round, left to
    // expire (the SLA is short) on the others.
    let pay = args(
        h,
        &[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"amount": 5000, "iban": "DE89370400440532013000"}"#,
            &h.url("/v1/payments"),
        ],
    );
    let held = tokio::spawn(async move { curl_w(&pay).await });
    if n.is_multiple_of(2) {
        for _ in 0..100 {
            let pending = h.approvals.list(Some("pending")).await.unwrap_or_default();
            if let Some(a) = pending.into_iter().next() {
                let _ = if n.is_multiple_of(4) {
                    h.approvals.approve(&a.id, "cfo@example.test", "soak").await
                } else {
                    h.approvals.deny(&a.id, "cfo@example.test", "soak").await
                };
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let got = held.await.unwrap_or_default();
    // 200 approved, 403 denied, 408/403 expired: refusals the load asked for.
    expect(counts, &got, &[200, 403, 408, 504], "tier-3");
    if quarantine {
        let got = curl_w(&args(h, &["-X", "DELETE", &h.url("/v1/vendors")])).await;
        expect(counts, &got, &[403], "tier-4");
        let got = curl_w(&[
            "-X".into(),
            "POST".into(),
            "-H".into(),
            format!("Authorization: Bearer {ADMIN_TOKEN}"),
            "-d".into(),
            r#"{"operator": "soak", "reason": "soak release"}"#.into(),
            format!("{admin}/v1/quarantine/release"),
        ])
        .await;
        expect(counts, &got, &[200], "release");
    }
    latencies
}

fn write_csv(path: &Path, rows: &[Row]) {
    let mut s = String::from("minute,rss_kib,fds,tasks,calls,unexpected,p50_ms,p99_ms\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{:.2},{:.2}",
            r.minute, r.rss_kib, r.fds, r.tasks, r.calls, r.unexpected, r.p50_ms, r.p99_ms
        );
    }
    std::fs::write(path, s).expect("write the CSV");
}

/// Two panels: RSS (MiB), fds and tasks per minute; p50 and p99 (ms).
fn write_svg(path: &Path, rows: &[Row]) {
    let (w, ph, pad) = (720.0, 260.0, 50.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" font-family="sans-serif" font-size="11">"#,
        2.0 * ph + 40.0
    );
    let n = rows.len().max(2) as f64 - 1.0;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / n;
    let mut panel = |top: f64, title: &str, series: &[(&str, &str, Vec<f64>)]| {
        let max = series
            .iter()
            .flat_map(|(_, _, v)| v.iter().copied())
            .fold(1e-9_f64, f64::max)
            * 1.1;
        let y = |v: f64| top + ph - pad / 2.0 - (ph - pad) * v / max;
        let _ = write!(
            svg,
            r#"<text x="{pad}" y="{}">{title} (max {max:.1})</text><line x1="{pad}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
            top + 14.0,
            y(0.0),
            w - pad,
            y(0.0)
        );
        for (k, (name, colour, values)) in series.iter().enumerate() {
            let points: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/><text x="{}" y="{}" fill="{colour}">{name}</text>"#,
                points.join(" "),
                w - pad - 150.0 + 60.0 * k as f64,
                top + 14.0
            );
        }
    };
    panel(
        0.0,
        "per minute: RSS MiB, open fds, tokio tasks",
        &[
            (
                "RSS MiB",
                "#1f77b4",
                rows.iter().map(|r| r.rss_kib as f64 / 1024.0).collect(),
            ),
            (
                "fds",
                "#ff7f0e",
                rows.iter().map(|r| r.fds as f64).collect(),
            ),
            (
                "tasks",
                "#2ca02c",
                rows.iter().map(|r| r.tasks as f64).collect(),
            ),
        ],
    );
    panel(
        ph + 20.0,
        "tier-1 latency ms",
        &[
            ("p50", "#1f77b4", rows.iter().map(|r| r.p50_ms).collect()),
            ("p99", "#d62728", rows.iter().map(|r| r.p99_ms).collect()),
        ],
    );
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).expect("write the plot");
}

/// Least-squares slope of `v` per minute.
fn slope(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = (n - 1.0) / 2.0;
    let my = v.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in v.iter().enumerate() {
        num += (i as f64 - mx) * (y - my);
        den += (i as f64 - mx).powi(2);
    }
    num / den
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let minutes: u32 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(2);
    let out = std::env::var_os("SOAK_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("agent-sidecar-soak"));
    std::fs::create_dir_all(&out).expect("the output directory");
    let ca = TestCa::new();
    // A tool API that keeps nothing per request: memory the soak sees is
    // the gateway's.
    let api = ToolApi::start_with(ca.leaf(&[HOST]).acceptor(), false).await;
    let h = Harness::start_with(
        Options {
            sla: Duration::from_secs(2),
            ..Options::default()
        },
        ca,
        api,
    )
    .await;
    let admin = h.admin(ADMIN_TOKEN).await;
    let counts = Arc::new(Counts::default());
    let runtime = tokio::runtime::Handle::current();
    let start = Instant::now();
    let mut rows = Vec::new();
    let mut latencies = Vec::new();
    let mut n = 0u64;
    let mut minute = 0u32;
    let mut last_calls = 0;
    while minute < minutes {
        let q = n % 40 == 39;
        latencies.extend(round(&h, &admin, &counts, n, q).await);
        n += 1;
        if start.elapsed() >= Duration::from_secs(60 * (u64::from(minute) + 1)) {
            minute += 1;
            // A policy reload a minute: the set rewritten in place.
            let doc = std::fs::read_dir(&h.policy_dir)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "yaml"))
                .expect("a policy document");
            let text = std::fs::read_to_string(&doc).unwrap();
            std::fs::write(&doc, format!("{text}\n# soak minute {minute}\n")).unwrap();
            let _ = h.policy.reload();
            latencies.sort_by(f64::total_cmp);
            let calls = counts.calls.load(Ordering::Relaxed);
            let row = Row {
                minute,
                rss_kib: rss_kib(),
                fds: open_fds(),
                tasks: runtime.metrics().num_alive_tasks(),
                calls: calls - last_calls,
                unexpected: counts.unexpected.load(Ordering::Relaxed),
                p50_ms: percentile(&latencies, 0.50) * 1e3,
                p99_ms: percentile(&latencies, 0.99) * 1e3,
            };
            last_calls = calls;
            eprintln!(
                "soak minute {}: rss {} KiB, fds {}, tasks {}, calls {}, unexpected {}, p50 {:.2} ms, p99 {:.2} ms",
                row.minute,
                row.rss_kib,
                row.fds,
                row.tasks,
                row.calls,
                row.unexpected,
                row.p50_ms,
                row.p99_ms
            );
            rows.push(row);
            latencies.clear();
            write_csv(&out.join("soak.csv"), &rows);
            write_svg(&out.join("soak.svg"), &rows);
        }
    }
    let rss: Vec<f64> = rows.iter().map(|r| r.rss_kib as f64).collect();
    let fds: Vec<f64> = rows.iter().map(|r| r.fds as f64).collect();
    eprintln!(
        "soak: {} minutes, RSS slope {:.1} KiB/min, fd slope {:.2}/min; soak.csv, soak.svg in {}",
        minutes,
        slope(&rss),
        slope(&fds),
        out.display()
    );
    assert_eq!(
        counts.unexpected.load(Ordering::Relaxed),
        0,
        "errors the load did not cause (see the lines above)"
    );
}
