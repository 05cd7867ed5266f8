//! Kill switch: the time from writing a team-level switch into the
//! fleet-controls file to each covered agent being stopped, with many
//! sidecars on this machine.
//!
//! `KILLSWITCH_AGENTS` (default 50) `agent-sidecar run` sidecars, each in
//! its own cgroup with a tier policy set naming its team (no tool hosts, so
//! the switch acts in the kernel alone; the gateway's part is covered by
//! `tests/tests/gateway.rs`), half of team `payments` and half of
//! `support`, all following one fleet-controls file. Each agent connects
//! to a loopback server every 50 ms and prints when its connects start
//! failing or work again. The switch for team `payments` is written at T0;
//! for each payments agent, the first refused connect after T0 is its
//! time to enforcement (with a gateway, the sidecar engages the gateway's
//! quarantine before the kernel's, so the gateway refuses no later). Then
//! the switch is removed and the time to the first working connect is
//! measured. Support agents must never fail.
//!
//! Needs root: `cargo bench -p agent-sidecar --bench killswitch` (uses
//! `AGENT_SIDECAR_BIN`, else `target/release/agent-sidecar`, else the debug
//! build). Prints a Markdown report.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, ensure};

const AGENT: &str = r#"
import socket, sys, time
port = int(sys.argv[1]); end = time.time() + float(sys.argv[2]); last = None
while time.time() < end:
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port)); now = "ok"
    except OSError:
        now = "fail"
    finally:
        s.close()
    if now != last:
        print("%.6f %s" % (time.time(), now), flush=True); last = now
    time.sleep(0.05)
"#;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn binary() -> PathBuf {
    if let Some(b) = std::env::var_os("AGENT_SIDECAR_BIN") {
        return b.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = root.join("target/release/agent-sidecar");
    if release.exists() {
        release
    } else {
        root.join("target/debug/agent-sidecar")
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Each agent's (time, "ok"|"fail") transitions.
type Transitions = Arc<Mutex<Vec<(f64, String)>>>;

fn main() -> Result<()> {
    ensure!(
        nix::unistd::Uid::effective().is_root(),
        "the kill switch benchmark attaches kernel programs: run it as root"
    );
    let n: usize = std::env::var("KILLSWITCH_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let bin = binary();
    let dir = tempfile::tempdir()?;
    let pol = dir.path().join("policy");
    std::fs::create_dir_all(&pol)?;
    std::fs::write(
        pol.join("base.yaml"),
        "kind: base\nname: bench\nlabel: \"1\"\nenvironments: [prod]\ncurrency: USD\n",
    )?;
    for team in ["payments", "support"] {
        std::fs::write(
            pol.join(format!("team-{team}.yaml")),
            format!("kind: team\nname: {team}\n"),
        )?;
    }
    let team = |i: usize| {
        if i.is_multiple_of(2) {
            "payments"
        } else {
            "support"
        }
    };
    // Ids of this run only: a killed earlier run may have left its pins.
    let id = |i: usize| format!("ks{}-{i}", std::process::id());
    for i in 0..n {
        std::fs::write(
            pol.join(format!("agent-{i}.yaml")),
            format!(
                "kind: agent\nid: {}\nowner: o@example.test\npurpose: bench\nteam: {}\n",
                id(i),
                team(i)
            ),
        )?;
    }
    let controls = dir.path().join("controls.yaml");
    std::fs::write(&controls, "kill_switches: []\n")?;
    let server = TcpListener::bind("127.0.0.1:0")?;
    let port = server.local_addr()?.port();
    std::thread::spawn(move || {
        for s in server.incoming() {
            drop(s);
        }
    });
    let script = dir.path().join("agent.py");
    std::fs::write(&script, AGENT)?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let lifetime = 40.0;
    let mut children: Vec<Child> = Vec::new();
    let mut seen: Vec<Transitions> = Vec::new();
    for i in 0..n {
        let mut child = Command::new(&bin)
            .args(["run", "--agent-id", &id(i), "--state-dir"])
            .arg(dir.path().join(format!("state-{i}")))
            .arg("--policy-dir")
            .arg(&pol)
            .arg("--fleet-controls")
            .arg(&controls)
            .args([
                "--allow",
                &format!("127.0.0.1:{port}"),
                "--",
                "/usr/bin/python3",
            ])
            .arg(&script)
            .args([port.to_string(), lifetime.to_string()])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("KILLSWITCH_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let out = child.stdout.take().context("stdout")?;
        let t: Transitions = Arc::default();
        let t2 = t.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some((at, what)) = line.split_once(' ')
                    && let Ok(at) = at.parse::<f64>()
                {
                    t2.lock().unwrap().push((at, what.to_string()));
                }
            }
        });
        children.push(child);
        seen.push(t);
    }
    // Every agent up and connecting.
    let start = now();
    while seen
        .iter()
        .any(|t| t.lock().unwrap().last().is_none_or(|(_, w)| w != "ok"))
    {
        ensure!(now() - start < 30.0, "not every agent came up within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let up = now() - start;
    std::thread::sleep(Duration::from_secs(1));
    let tripped = now();
    {
        let mut f = std::fs::File::create(dir.path().join("controls.tmp"))?;
        f.write_all(
            b"kill_switches:\n  - {id: ks-bench, scope: {team: payments}, reason: benchmark}\n",
        )?;
        f.sync_all()?;
    }
    std::fs::rename(dir.path().join("controls.tmp"), &controls)?;
    std::thread::sleep(Duration::from_secs(4));
    let released = now();
    std::fs::write(dir.path().join("controls.tmp"), "kill_switches: []\n")?;
    std::fs::rename(dir.path().join("controls.tmp"), &controls)?;
    std::thread::sleep(Duration::from_secs(4));
    let (mut stop, mut resume, mut others_failed, mut missing) = (Vec::new(), Vec::new(), 0, 0);
    for (i, t) in seen.iter().enumerate() {
        let t = t.lock().unwrap();
        if team(i) == "payments" {
            match t.iter().find(|(at, w)| *at >= tripped && w == "fail") {
                Some((at, _)) => stop.push(at - tripped),
                None => missing += 1,
            }
            match t.iter().find(|(at, w)| *at >= released && w == "ok") {
                Some((at, _)) => resume.push(at - released),
                None => missing += 1,
            }
        } else if t.iter().any(|(_, w)| w == "fail") {
            others_failed += 1;
        }
    }
    // SIGTERM: each sidecar removes its kernel enforcement.
    for c in &children {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    for mut c in children {
        let _ = c.wait();
    }
    for t in [&mut stop, &mut resume] {
        t.sort_by(f64::total_cmp);
    }
    let ms = |v: f64| format!("{:.0}", v * 1000.0);
    println!("## Kill switch\n");
    println!(
        "{n} `agent-sidecar run` sidecars ({}), each in its own cgroup with a tier policy set naming its team (no tool hosts: the switch acts in the kernel); {} of team payments. All up {up:.1} s after the start.\n",
        bin.display(),
        n.div_ceil(2)
    );
    println!("| step | agents | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|");
    for (name, v) in [
        ("trip -> connect refused", &stop),
        ("release -> connect works", &resume),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            v.len(),
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(v.last().copied().unwrap_or(f64::NAN))
        );
    }
    println!(
        "\nsupport agents that saw a refused connect: {others_failed}; payments agents without a measured step: {missing}"
    );
    ensure!(
        others_failed == 0 && missing == 0,
        "the switch stopped the wrong agents or missed some"
    );
    Ok(())
}
