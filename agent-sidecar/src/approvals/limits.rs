//! The bounds of what the admin API accepts, shared by the bodies it reads
//! and the approver directory.

/// Largest accepted request body, in bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// Longest accepted approver identity, in bytes.
pub const MAX_APPROVER: usize = 256;
/// Longest accepted reason, in bytes.
pub const MAX_REASON: usize = 2048;
