//! Answers to the agent without the credential the gateway injected:
//! [`redact_head`] for the status line's headers, [`RedactedBody`] for the
//! body and trailers as they stream (see
//! [`Redactor`](crate::credentials::Redactor) for the forms searched).

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use hyper::{
    HeaderMap,
    body::{Body, Frame, SizeHint},
    header::HeaderValue,
};

use crate::credentials::{REDACTED, RedactStream, Redactor};

/// An upstream body, redacted when a credential was injected.
pub(crate) struct RedactedBody<B> {
    inner: B,
    redactor: Option<Arc<Redactor>>,
    stream: RedactStream,
    trailers: Option<HeaderMap>,
    done: bool,
}

impl<B> RedactedBody<B> {
    /// `inner`, redacted by `redactor` (passed through when `None`).
    pub(crate) fn new(inner: B, redactor: Option<Arc<Redactor>>) -> Self {
        RedactedBody {
            inner,
            redactor,
            stream: RedactStream::default(),
            trailers: None,
            done: false,
        }
    }
}

impl<B> Body for RedactedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let Some(redactor) = this.redactor.clone() else {
            return Pin::new(&mut this.inner).poll_frame(cx);
        };
        loop {
            if let Some(trailers) = this.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    this.done = true;
                    let rest = this.stream.finish(&redactor);
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    let out = this.stream.push_bytes(&redactor, data);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Err(frame) => {
                    let Ok(mut trailers) = frame.into_trailers() else {
                        continue;
                    };
                    redact_headers(&redactor, &mut trailers);
                    // The held-back end of the data goes before them.
                    let rest = this.stream.finish(&redactor);
                    if rest.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    this.trailers = Some(trailers);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.redactor {
            None => self.inner.is_end_stream(),
            Some(_) => self.done && self.trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.redactor {
            None => self.inner.size_hint(),
            Some(_) => SizeHint::default(),
        }
    }
}

/// Replaces header values that hold a form of the credential.
pub(crate) fn redact_headers(redactor: &Redactor, headers: &mut HeaderMap) {
    for value in headers.values_mut() {
        let redacted = redactor.redact(value.as_bytes());
        if let std::borrow::Cow::Owned(bytes) = redacted {
            *value = HeaderValue::from_bytes(&bytes)
                .unwrap_or_else(|_| HeaderValue::from_static(REDACTED));
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    #[tokio::test]
    async fn chunks_and_trailers_are_redacted() {
        let redactor =
            Arc::new(Redactor::new(&[b"Bearer tok-123456789", b"tok-123456789"]).unwrap());
        let mut trailers = HeaderMap::new();
        trailers.insert("x-echo", HeaderValue::from_static("tok-123456789"));
        let frames = vec![
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"a Bearer tok-12"))),
            Ok(Frame::data(Bytes::from_static(b"3456789 b tok-1234"))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = RedactedBody::new(StreamBody::new(stream::iter(frames)), Some(redactor));
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap();
        assert_eq!(trailers["x-echo"], REDACTED);
        let bytes = collected.to_bytes();
        assert_eq!(&bytes[..], b"a [redacted] b tok-1234");
    }
}
