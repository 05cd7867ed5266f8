//! [`FirstByteTimeout`]: a connection that must start talking in time.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, ReadBuf},
    time::Sleep,
};

/// Wraps an accepted (or TLS-terminated) stream so that reading fails with
/// [`io::ErrorKind::TimedOut`] when the client sends no byte within the
/// timeout; after the first byte it is a plain pass-through.
///
/// hyper's header read timeout only starts once the server knows the
/// protocol, and the HTTP/1-or-2 detection of the auto builder waits for
/// the client's first bytes without a bound: without this wrapper a client
/// that connects and stays silent holds its connection forever. Serve
/// `TokioIo::new(FirstByteTimeout::new(stream, limits.header_read_timeout))`.
#[derive(Debug)]
pub struct FirstByteTimeout<T> {
    inner: T,
    /// Running until the first byte arrives; `None` afterwards.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> FirstByteTimeout<T> {
    /// Starts the clock: `inner` has `timeout` from now to send a byte.
    pub fn new(inner: T, timeout: Duration) -> Self {
        FirstByteTimeout {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, by value.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstByteTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = self
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client sent no byte within the header read timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

crate::io_delegate::delegate_async_write!(FirstByteTimeout);

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn silent_peer_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let mut wrapped = FirstByteTimeout::new(server, Duration::from_millis(50));
        let mut buf = [0u8; 8];
        let err = wrapped.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[tokio::test]
    async fn first_byte_disarms_the_clock() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut wrapped = FirstByteTimeout::new(server, Duration::from_millis(50));
        client.write_all(b"G").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(wrapped.read(&mut buf).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.write_all(b"ET").await.unwrap();
        assert_eq!(wrapped.read(&mut buf).await.unwrap(), 2);
        wrapped.write_all(b"ok").await.unwrap();
        let mut back = [0u8; 2];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ok");
        assert!(wrapped.get_ref().is_write_vectored() || !wrapped.is_write_vectored());
        let _inner = wrapped.into_inner();
    }
}
