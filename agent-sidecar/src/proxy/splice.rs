//! Copying bytes both ways between the agent and the upstream until both
//! sides are done, counting them even when the copy ends in an error.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, copy_bidirectional_with_sizes};

/// Copy buffer per direction. Larger than tokio's 8 KiB default: bulk
/// transfers then take a fraction of the read/write calls.
const BUFFER: usize = 64 * 1024;

/// Bytes moved by [`splice`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Spliced {
    /// Agent to upstream.
    pub(crate) up: u64,
    /// Upstream to agent.
    pub(crate) down: u64,
}

/// Splices `client` and `upstream`. Half-close is passed on: when one side
/// finishes sending, the other side's write half is shut down and the other
/// direction keeps flowing until it finishes too. A reset on either side
/// ends the splice; the bytes counted so far are still returned.
pub(crate) async fn splice<C, U>(client: C, upstream: U) -> Spliced
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = Counting::new(client);
    let mut upstream = Counting::new(upstream);
    if let Err(e) = copy_bidirectional_with_sizes(&mut client, &mut upstream, BUFFER, BUFFER).await
    {
        tracing::debug!(target: "agent_sidecar::proxy", error = %e, "splice ended with an error");
    }
    Spliced {
        up: client.read,
        down: upstream.read,
    }
}

/// Counts the bytes read from a stream.
struct Counting<S> {
    inner: S,
    read: u64,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Self {
        Self { inner, read: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.read += n as u64;
        poll
    }
}

crate::io_delegate::delegate_async_write!(Counting);

#[cfg(test)]
mod tests;
