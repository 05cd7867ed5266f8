//! What a terminated connection knows about the call site, handed to
//! every stage of the [`pipeline`](super::pipeline).

/// What the connection knows: the tool host (from SNI) and port.
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    pub(crate) host: String,
    pub(crate) port: u16,
}
