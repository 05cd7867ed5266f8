//! `cargo xtask soak --minutes N`: runs the soak test of the `tests` crate
//! (`tests/tests/soak.rs`, a test target outside `cargo test`) for N minutes, with
//! its CSV and SVG written to `target/soak/`.

use std::{path::Path, process::Command};

use anyhow::{Context, Result, bail};

/// Runs the soak for `minutes`; fails when the load met errors it did not
/// cause.
pub(crate) fn soak(root: &Path, minutes: u32) -> Result<()> {
    let out = root.join("target/soak");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let status = Command::new(env!("CARGO"))
        .current_dir(root)
        .args([
            "test",
            "-p",
            "agent-sidecar-tests",
            "--test",
            "soak",
            "--",
            "--nocapture",
        ])
        .env("SOAK_MINUTES", minutes.to_string())
        .env("SOAK_OUT", &out)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("the soak failed ({status}); see its output above");
    }
    println!(
        "soak: {} and {}",
        out.join("soak.csv").display(),
        out.join("soak.svg").display()
    );
    Ok(())
}
