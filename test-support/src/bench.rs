//! What the benchmarks (`agent-sidecar/benches/`) share beyond the test
//! servers: statistics and machine facts for their reports, per-thread
//! scheduler clocks, and nginx as a reference point.

pub mod nginx;
pub mod report;
pub mod sched;
