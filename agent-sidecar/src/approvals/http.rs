//! A minimal HTTP/1.1 client (hyper, one connection per request) shared by
//! the webhook notifier and [`ApprovalsClient`](super::ApprovalsClient):
//! `http://` URLs, and `https://` ones when the caller gives the TLS client
//! configuration that verifies the server (webhooks do; the admin API client
//! speaks plain HTTP to a local listener).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, Uri, body::Incoming, header};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, pki_types::ServerName};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    task::JoinHandle,
};
use tokio_rustls::TlsConnector;

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The webhook's queue directory cannot be made or read.
    #[error("webhook queue directory {path}: {source}; give a writable directory")]
    Queue {
        /// The directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The URL does not parse or has no host.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS handshake failed (e.g. the certificate is not trusted).
    #[error("TLS handshake with {authority} failed: {source}")]
    Tls {
        /// `host:port`.
        authority: String,
        /// What rustls said.
        source: std::io::Error,
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

/// Where requests go: host, port, and the base path of the URL, and for
/// `https://` how to verify the server.
#[derive(Clone)]
pub(super) struct RemoteEndpoint {
    host: String,
    port: u16,
    authority: String,
    base_path: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for RemoteEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEndpoint")
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl RemoteEndpoint {
    /// Parses an `http://host[:port][/path]` URL, or with `tls` (which then
    /// verifies the server's certificate for `host`) an `https://` one.
    pub(super) fn parse(url: &str, tls: Option<Arc<ClientConfig>>) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
        let (tls, default_port) = match (uri.scheme_str(), tls) {
            (Some("http"), _) => (None, 80),
            (Some("https"), Some(config)) => (Some(config), 443),
            (Some("https"), None) => return Err(invalid("only http:// is supported here")),
            _ => return Err(invalid("the URL must start with http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tls = match tls {
            None => None,
            Some(config) => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| invalid(&format!("not a TLS server name: {e}")))?;
                Some((TlsConnector::from(config), name))
            }
        };
        Ok(RemoteEndpoint {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(default_port),
            authority: authority.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
            tls,
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
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| HttpError::Connect {
                authority: self.authority.clone(),
                source,
            })?;
        match &self.tls {
            None => self.exchange_on(stream, req, limit).await,
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|source| HttpError::Tls {
                        authority: self.authority.clone(),
                        source,
                    })?;
                self.exchange_on(stream, req, limit).await
            }
        }
    }

    async fn exchange_on<S>(
        &self,
        stream: S,
        req: Request<Full<Bytes>>,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), HttpError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let exchange_err = |source| HttpError::Exchange {
            authority: self.authority.clone(),
            source,
        };
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
    use super::RemoteEndpoint;

    #[test]
    fn parses_plain_http_urls() {
        let e = RemoteEndpoint::parse("http://127.0.0.1:8080/hooks/", None).expect("parses");
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8080));
        assert_eq!(e.base_path, "/hooks");
        let e = RemoteEndpoint::parse("http://[::1]/", None).expect("parses");
        assert_eq!(
            (e.host.as_str(), e.port, e.base_path.as_str()),
            ("::1", 80, "")
        );
        let req = e.request(hyper::Method::GET, "").body(()).expect("builds");
        assert_eq!(req.uri(), "/");
    }

    #[test]
    fn refuses_https_without_tls_and_credentials() {
        for bad in [
            "https://example.com/",
            "http://u:p@example.com/",
            "ftp://example.com/",
            "example.com",
            "::",
        ] {
            assert!(RemoteEndpoint::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn https_defaults_to_port_443_with_tls() {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let e = RemoteEndpoint::parse("https://soc.example.com/alerts", Some(config.into()))
            .expect("parses");
        assert_eq!((e.host.as_str(), e.port), ("soc.example.com", 443));
        assert!(e.tls.is_some());
    }
}
