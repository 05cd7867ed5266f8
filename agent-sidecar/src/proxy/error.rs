//! Errors of the proxy listeners' set-up. Per-connection problems are not
//! errors of the listener: they become refusals and events.

use std::{io, net::SocketAddr};

/// A listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Cause.
        source: io::Error,
    },
    /// The bound socket has no local address.
    #[error("cannot read the listener's local address: {0}")]
    LocalAddr(io::Error),
}
