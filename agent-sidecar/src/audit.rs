//! The audit trail: a tamper-evident, durable record of every action.
//!
//! Producers (the gateway, the kernel reader, the resolver and proxies,
//! approvals, the policy store, `run`) hand an [`AuditEntry`] to an open
//! [`AuditLog`]; the log makes it an [`AuditRecord`] (one JSON line), a
//! leaf of an RFC 6962 Merkle tree, and signs checkpoints of the tree as
//! C2SP signed notes. Offline, [`verify`] checks a log directory and names
//! the first bad record or checkpoint, [`proof`] makes and checks
//! inclusion and consistency proofs, and [`query`] reads records by time
//! through the segment index. `docs/audit.md` documents the record and
//! the files; `docs/audit.schema.json` is generated from [`record`].
//!
//! - [`record`]: the record and its parts; the canonical encoding;
//!   [`time`]: record times; [`schema`]: the record's JSON Schema;
//! - [`store`]: the append-only segment store, its writer thread (group
//!   commit, fsync policy), recovery and retention;
//! - [`hash`] and [`tree`]: the Merkle tree, its node files and the
//!   proofs;
//! - [`checkpoint`]: checkpoints, signed notes, keys and witness sinks;
//! - [`verify`], [`proof`], [`query`]: what the `audit` commands do.

pub mod checkpoint;
mod error;
pub mod hash;
mod id;
mod metrics;
pub mod proof;
pub mod query;
pub mod record;
pub mod schema;
pub mod ship;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod time;
pub mod tree;
pub mod verify;

pub use checkpoint::{CheckpointSink, FileSink, NoteSigner, NoteVerifier, SignedCheckpoint};
pub use error::AuditError;
pub use metrics::AuditMetrics;
pub use record::{AuditEntry, AuditRecord, Phase, RecordKind};
pub use store::{Appended, AuditConfig, AuditCounters, AuditLog, FsyncPolicy, RetentionPolicy};
