//! Up to which record a shipper may read: the fsynced records of the
//! log this process writes, or every whole line of another's.

use crate::audit::store::AuditLog;

/// Up to which record the shipper may read.
#[derive(Clone, Debug)]
pub enum ShipSource {
    /// The log this process writes: only records it has fsynced are
    /// shipped (a record a machine crash could still take back is never
    /// sent).
    Log(AuditLog),
    /// A log another process writes (or none): every whole line in the
    /// files.
    Files,
}

impl ShipSource {
    /// The number of records that may be shipped, when known.
    pub(super) fn durable(&self) -> Option<u64> {
        match self {
            ShipSource::Log(log) => Some(log.progress().1),
            ShipSource::Files => None,
        }
    }
}
