//! Hot reload: a [`PolicyStore`] holds the policy set in force and swaps in
//! a new one atomically. A new set is read and compiled off the decision
//! path; on any error the last-known-good set stays in force, the error is
//! logged with its location and exposed in metrics. The store never runs
//! without a set (it cannot be opened without one) and never runs a
//! half-loaded one: a set is swapped in only once fully compiled, and only
//! if the directory did not change while it was being read.
//!
//! Nor does it put in force a set caught half-way through an update (see
//! `changes`, `in_place` and [`manifest`]): the
//! watcher waits for files open for writing to be closed; a set read
//! after writes in place may only add to the set in force (removals and
//! loosening must be published atomically); and when the directory holds a
//! `SHA256SUMS` manifest, the files must match it. A refused set leaves
//! the last-known-good set in force, with a log line, a metric and the
//! reason ([`PolicyStore::last_refusal`]).
//!
//! Previous versions are kept (bounded) and can be restored with
//! [`PolicyStore::rollback`]; with an archive directory every activated
//! version is also written to `ARCHIVE/<hash>/`, so it stays loadable after
//! a restart ([`PolicyStore::load_snapshot_dir`] or `rollback`).

mod changes;
mod in_place;
mod refusal;
mod store;
mod watch;

pub use changes::Writes;
pub use refusal::ReloadRefusal;
pub use store::{PolicyStore, ReloadObserver, ReloadOutcome, RollbackError, StoreOptions};
pub use watch::{WatchHandle, WatchOptions, watch};

#[cfg(test)]
mod tests;
