//! Where threads spend a benchmark's wall time: running on a CPU, or
//! runnable but waiting on a run queue (`/proc/<pid>/task/<tid>/schedstat`,
//! nanoseconds since the thread started).

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Nanoseconds a thread spent running and waiting to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sched {
    /// Time on a CPU.
    pub run_ns: u64,
    /// Time runnable, waiting on a run queue.
    pub wait_ns: u64,
}

impl std::ops::Sub for Sched {
    type Output = Sched;
    fn sub(self, earlier: Sched) -> Sched {
        Sched {
            run_ns: self.run_ns.saturating_sub(earlier.run_ns),
            wait_ns: self.wait_ns.saturating_sub(earlier.wait_ns),
        }
    }
}

impl std::ops::AddAssign for Sched {
    fn add_assign(&mut self, other: Sched) {
        self.run_ns += other.run_ns;
        self.wait_ns += other.wait_ns;
    }
}

/// One thread's scheduler statistics file.
#[derive(Clone, Debug)]
pub struct SchedClock(PathBuf);

impl SchedClock {
    /// The thread of this process named `name` (`comm`, as set by
    /// `std::thread::Builder::name`).
    pub fn own_thread(name: &str) -> Result<Self> {
        for entry in std::fs::read_dir("/proc/self/task")?.flatten() {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == name {
                return Ok(Self(entry.path().join("schedstat")));
            }
        }
        anyhow::bail!("no thread named {name} in this process")
    }

    /// This process's main thread.
    pub fn main_thread() -> Self {
        Self(PathBuf::from(format!(
            "/proc/self/task/{}/schedstat",
            std::process::id()
        )))
    }

    /// A single-threaded process (e.g. an nginx worker).
    pub fn process(pid: u32) -> Self {
        Self(PathBuf::from(format!("/proc/{pid}/schedstat")))
    }

    /// The statistics now.
    pub fn read(&self) -> Result<Sched> {
        let text = std::fs::read_to_string(&self.0)
            .with_context(|| format!("read {}", self.0.display()))?;
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(run_ns)), Some(Ok(wait_ns))) => Ok(Sched { run_ns, wait_ns }),
            _ => anyhow::bail!("unexpected {}: {text:?}", self.0.display()),
        }
    }
}
