//! `cargo xtask fuzz --seconds N`: builds the cargo-fuzz crate in `fuzz/`
//! with the nightly toolchain (installing cargo-fuzz when it is missing)
//! and runs every target for N seconds, one after the other, each on a
//! scratch copy of its committed seeds (`fuzz/corpus/<target>/` is never
//! written). Prints executions and crashes per target and fails when a
//! target crashed; crashing inputs are in `fuzz/artifacts/<target>/`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// The cargo-fuzz version installed when none is.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// What one target did.
struct Outcome {
    target: String,
    execs: u64,
    crashed: bool,
}

/// `cargo +nightly ...` through rustup, with none of the variables the
/// outer (stable) cargo set for xtask, which would pin the toolchain.
fn nightly_cargo(dir: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.arg("+nightly")
        .current_dir(dir)
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTFLAGS");
    c
}

fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    let installed = nightly_cargo(root)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        super::run(Command::new("cargo").args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ]))
        .context("installing cargo-fuzz (the nightly toolchain must be installed: `rustup toolchain install nightly`)")?;
    }
    Ok(())
}

/// The targets `fuzz/Cargo.toml` declares (`[[bin]]` names).
fn targets(fuzz: &Path) -> Result<Vec<String>> {
    let manifest =
        std::fs::read_to_string(fuzz.join("Cargo.toml")).context("reading fuzz/Cargo.toml")?;
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
            names.push(name.trim_matches('"').to_string());
        }
    }
    if names.is_empty() {
        bail!("fuzz/Cargo.toml declares no [[bin]] target");
    }
    Ok(names)
}

/// libFuzzer's last `#N ...` status line gives the executions.
fn execs(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|l| {
            let rest = l.strip_prefix("Done ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .or_else(|| {
            log.lines().rev().find_map(|l| {
                let n = l.strip_prefix('#')?.split_whitespace().next()?;
                n.parse().ok()
            })
        })
        .unwrap_or(0)
}

/// Builds every target (`dev`: unoptimised, faster to build, for short
/// runs) and runs each for `seconds`; `only` limits the run to one target.
pub(crate) fn fuzz(root: &Path, seconds: u64, dev: bool, only: Option<&str>) -> Result<()> {
    let fuzz = root.join("fuzz");
    ensure_cargo_fuzz(root)?;
    let mut names = targets(&fuzz)?;
    if let Some(only) = only {
        if !names.iter().any(|n| n == only) {
            bail!("no fuzz target `{only}`; targets: {}", names.join(", "));
        }
        names.retain(|n| n == only);
    }
    let profile: &[&str] = if dev { &["--dev"] } else { &[] };
    super::run(nightly_cargo(&fuzz).args(["fuzz", "build"]).args(profile))?;
    let mut outcomes = Vec::new();
    for name in &names {
        let seeds = fuzz.join("corpus").join(name);
        let scratch: PathBuf = fuzz.join("target/corpus").join(name);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        let log_path = fuzz.join("target").join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        eprintln!(
            "+ fuzzing {name} for {seconds} s (log: {})",
            log_path.display()
        );
        let status = nightly_cargo(&fuzz)
            .args(["fuzz", "run"])
            .args(profile)
            .arg(name)
            .arg(&scratch)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-timeout=30")
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("running fuzz target {name}"))?;
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let outcome = Outcome {
            target: name.clone(),
            execs: execs(&text),
            crashed: !status.success(),
        };
        if outcome.crashed {
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        outcomes.push(outcome);
    }
    println!("\n| target | seconds | executions | crashes |\n|---|---|---|---|");
    for o in &outcomes {
        println!(
            "| {} | {seconds} | {} | {} |",
            o.target,
            o.execs,
            u8::from(o.crashed)
        );
    }
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.crashed)
        .map(|o| o.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!(
            "fuzz targets crashed: {} (inputs in fuzz/artifacts/<target>/; reproduce with `cd fuzz && cargo +nightly fuzz run <target> <input>`)",
            crashed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_executions_from_libfuzzer_output() {
        let log = "#2\tINITED cov: 5\n#4096\tpulse  cov: 9\n#172608\tDONE   cov: 2050\nDone 172608 runs in 16 second(s)\n";
        assert_eq!(execs(log), 172_608);
        assert_eq!(
            execs("#77\tNEW cov: 3\n==1== ERROR: libFuzzer: deadly signal\n"),
            77
        );
        assert_eq!(execs(""), 0);
    }

    #[test]
    fn lists_the_targets_of_the_fuzz_crate() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let names = targets(&fuzz).unwrap();
        for t in [
            "dns_query",
            "sniff",
            "mcp_jsonrpc",
            "mcp_sse",
            "http_request",
        ] {
            assert!(names.iter().any(|n| n == t), "{names:?}");
        }
        for n in &names {
            assert!(fuzz.join("corpus").join(n).is_dir(), "no seeds for {n}");
        }
    }
}
