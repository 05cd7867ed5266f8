//! Statistics and machine facts shared by the benchmark reports
//! (`benches/proxy.rs`, `benches/gateway.rs`).

use std::{path::Path, process::ExitCode, time::Duration};

/// A duration in microseconds.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The median (nearest rank); sorts `v`.
pub fn median(v: &mut [f64]) -> f64 {
    percentile(v, 0.5)
}

/// Nearest-rank percentile; sorts `v`. NaN when empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// CPUs this process may use.
pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `Linux <release>`.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "unknown kernel".to_owned())
}

/// Runs a benchmark on a current-thread runtime, prints its report and, with
/// `--write-docs` (or `env_var=1`), writes it to `docs/benchmarks-<name>.md`.
pub fn main_with_report<F>(name: &str, env_var: &str, run: impl FnOnce() -> F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<String>>,
{
    let write_docs = std::env::args().any(|a| a == "--write-docs")
        || std::env::var(env_var).is_ok_and(|v| v == "1");
    let report = current_thread().and_then(|rt| rt.block_on(run()));
    match report {
        Ok(report) => {
            println!("{report}");
            if write_docs {
                let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(format!("../docs/benchmarks-{name}.md"));
                if let Err(e) = std::fs::write(&path, &report) {
                    eprintln!("{name} bench: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name} bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A single-threaded Tokio runtime.
pub fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
