//! Hand-over of an allowed stream to the tool gateway: when the name is a
//! tool host, the proxy does not splice bytes but gives the stream, with
//! the bytes it already sniffed put back in front, to an [`Inspect`]
//! implementation that terminates TLS and decides every request.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A bidirectional byte stream the gateway can own.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Terminates and inspects streams to some hosts.
pub trait Inspect: Send + Sync {
    /// Whether streams to `host:port` (an allowed name) go to [`Inspect::serve`].
    fn inspects(&self, host: &str, port: u16) -> bool;
    /// Serves the stream to its end.
    fn serve(
        &self,
        stream: Rewind<Box<dyn Io>>,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// A stream whose first reads return `prefix` (the bytes the proxy sniffed).
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// `inner`, with `prefix` read first.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Rewind { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

crate::io_delegate::delegate_async_write!(Rewind);

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_prefix_is_read_first_and_writes_pass_through() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = Rewind::new(Bytes::from_static(b"hello "), a);
        b.write_all(b"world").await.unwrap();
        let mut got = vec![0u8; 11];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
        r.write_all(b"back").await.unwrap();
        let mut back = [0u8; 4];
        b.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"back");
    }
}
