//! A minimal plain-HTTP/1.1 client (hyper, one connection per request) shared
//! by the webhook notifier and [`ApprovalsClient`](super::ApprovalsClient).
//! There is no TLS yet: URLs must be `http://`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, Uri, body::Incoming, header};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, task::JoinHandle};

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL does not parse or has no host.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting failed.
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP exchange with {authority} failed: {source}")]
    Exchange {
        /// `host:port`.
        authority: String,
        /// What hyper said.
        source: hyper::Error,
    },
    /// Reading the response body failed or it was too large.
    #[error("response body from {authority} unreadable or larger than {limit} bytes")]
    Body {
        /// `host:port`.
        authority: String,
        /// The size limit.
        limit: usize,
    },
    /// The whole exchange took longer than the timeout.
    #[error("no answer from {authority} within {timeout:?}")]
    Timeout {
        /// `host:port`.
        authority: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// Where requests go: host, port, and the base path of an `http://` URL.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    host: String,
    port: u16,
    authority: String,
    base_path: String,
}

impl Endpoint {
    /// Parses an `http://host[:port][/path]` URL.
    pub(super) fn parse(url: &str) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("only http:// is supported (no TLS yet)"));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        Ok(Endpoint {
            host: host.to_string(),
            port,
            authority: authority.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// A request builder for `method` on `base path + path`, with `Host` set.
    pub(super) fn request(
        &self,
        method: hyper::Method,
        path: &str,
    ) -> hyper::http::request::Builder {
        let target = format!("{}{path}", self.base_path);
        let target = if target.is_empty() {
            "/".to_string()
        } else {
            target
        };
        Request::builder()
            .method(method)
            .uri(target)
            .header(header::HOST, self.authority.as_str())
    }

    /// Sends `req` on a new connection and reads at most `limit` bytes of
    /// the response, all within `timeout`.
    pub(super) async fn send(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        tokio::time::timeout(timeout, self.exchange(req, limit))
            .await
            .map_err(|_| HttpError::Timeout {
                authority: self.authority.clone(),
                timeout,
            })?
    }

    async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        let exchange_err = |source| HttpError::Exchange {
            authority: self.authority.clone(),
            source,
        };
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| HttpError::Connect {
                authority: self.authority.clone(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(exchange_err)?;
        let _conn = AbortOnDrop(tokio::spawn(async move {
            // The connection's own error surfaces through `send_request`.
            let _ = conn.await;
        }));
        let resp: hyper::Response<Incoming> =
            sender.send_request(req).await.map_err(exchange_err)?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|_| HttpError::Body {
                authority: self.authority.clone(),
                limit,
            })?
            .to_bytes();
        Ok((status, body))
    }
}

/// Stops the connection task when the exchange ends or times out.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn parses_plain_http_urls() {
        let e = Endpoint::parse("http://127.0.0.1:8080/hooks/").expect("parses");
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8080));
        assert_eq!(e.base_path, "/hooks");
        let e = Endpoint::parse("http://[::1]/").expect("parses");
        assert_eq!(
            (e.host.as_str(), e.port, e.base_path.as_str()),
            ("::1", 80, "")
        );
        let req = e.request(hyper::Method::GET, "").body(()).expect("builds");
        assert_eq!(req.uri(), "/");
    }

    #[test]
    fn refuses_tls_and_credentials() {
        for bad in [
            "https://example.com/",
            "http://u:p@example.com/",
            "example.com",
            "::",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
