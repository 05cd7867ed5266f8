//! Reading a request body within a size and a time bound.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::{body::Body, http::StatusCode};

/// A request body the gateway did not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is (or announces it will be) larger than the limit.
    #[error("request body is larger than {limit} bytes; send a smaller request")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body did not arrive within the time allowed.
    #[error("request body was not received in time; send the whole body without pausing")]
    Timeout,
    /// The connection failed or the body was malformed (bad chunk framing).
    #[error("request body could not be read: {0}")]
    Read(String),
}

impl BodyError {
    /// The status to answer with: 413, 408 or 400.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads a whole body of at most `limit` bytes within `timeout`.
///
/// A body whose declared length (Content-Length) exceeds `limit` is refused
/// before any of it is read. After an error the rest of the body is unread:
/// answer with `Connection: close`.
pub async fn collect_limited<B>(
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(BodyError::TooLarge { limit });
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.is::<LengthLimitError>() => Err(BodyError::TooLarge { limit }),
        Ok(Err(err)) => Err(BodyError::Read(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn reads_within_limit() {
        let body = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(collect_limited(body, 5, SECOND).await.unwrap(), "hello");
        let empty = Full::new(Bytes::new());
        assert_eq!(collect_limited(empty, 0, SECOND).await.unwrap(), "");
    }

    #[tokio::test]
    async fn refuses_declared_oversize_at_once() {
        let body = Full::new(Bytes::from_static(b"hello!"));
        let err = collect_limited(body, 5, SECOND).await.unwrap_err();
        assert_eq!(err, BodyError::TooLarge { limit: 5 });
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(err.to_string().contains("larger than 5 bytes"));
    }

    fn stream(
        chunks: Vec<Result<&'static [u8], &'static str>>,
    ) -> impl Body<Data = Bytes, Error = std::io::Error> {
        let frames = chunks.into_iter().map(|c| {
            c.map(|b| Frame::data(Bytes::from_static(b)))
                .map_err(std::io::Error::other)
        });
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn refuses_streamed_oversize() {
        let body = stream(vec![Ok(b"abc"), Ok(b"def")]);
        let err = collect_limited(body, 5, SECOND).await.unwrap_err();
        assert_eq!(err, BodyError::TooLarge { limit: 5 });
    }

    #[tokio::test]
    async fn read_errors() {
        let body = stream(vec![Ok(b"abc"), Err("connection reset")]);
        let err = collect_limited(body, 100, SECOND).await.unwrap_err();
        assert_eq!(err, BodyError::Read("connection reset".into()));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn times_out() {
        let pending = StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, Infallible>,
        >());
        let err = collect_limited(pending, 100, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err, BodyError::Timeout);
        assert_eq!(err.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
