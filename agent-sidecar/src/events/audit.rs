//! [`AuditSink`]: the audit trail's consumer of the action events, and the
//! gateway's [`AttemptJournal`].
//!
//! Every [`ActionEvent`] becomes one record (a few kinds of event become
//! none: allowed DNS answers, dropped MCP messages; see `docs/audit.md`),
//! built on the producer's task and handed to the log's writer thread
//! with [`AuditLog::append`], which never touches the disk: the producer
//! never waits for a write. The gateway's attempts are the exception by
//! design: a decided call waits until its attempt record is written (tier
//! 1) or fsynced (tier >= 2) before it is forwarded or held.
//!
//! When the log cannot take a record, an attempt is refused (the call
//! fails closed with `audit_unavailable`), counted and logged as an alert;
//! with the explicit fail-open setting the call goes ahead, counted, and a
//! `fail_open` record is attempted. A record of an event that gates
//! nothing (an outcome, a refusal) that the log cannot take is counted as
//! lost and logged.

mod entries;
mod sink;
mod trail;

pub use sink::AuditSink;
pub use trail::{AuditOptions, AuditTrail, AuditTrailError};
