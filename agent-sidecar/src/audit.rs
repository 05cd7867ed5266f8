//! The audit trail: a tamper-evident, durable record of every action.
//!
//! - [`hash`]: RFC 6962 leaf and node hashes over SHA-256;
//! - [`tree`]: the Merkle tree, its node files and the proofs;
//! - [`checkpoint`]: checkpoints, signed notes, keys and witness sinks.

pub mod checkpoint;
pub mod hash;
pub mod tree;

pub use checkpoint::{CheckpointSink, FileSink, NoteSigner, NoteVerifier, SignedCheckpoint};
