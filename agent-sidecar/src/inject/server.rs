//! `agent-sidecar inject-webhook`'s HTTPS server.
//!
//! | Path | Posted by |
//! |---|---|
//! | `POST /mutate` | the webhook entry selecting pods by label |
//! | `POST /mutate/namespace` | the entry selecting labelled namespaces |
//! | `GET /healthz` | the kubelet |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::certs::ReloadingCert;
use super::review::Webhook;

/// Largest review accepted (the API server's own request limit is 3 MiB).
pub const MAX_REVIEW_BYTES: usize = 3 * 1024 * 1024;

/// The TLS configuration: TLS 1.2/1.3, the reloading certificate.
pub fn tls_config(cert: Arc<ReloadingCert>) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `webhook` on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: ServerConfig,
    webhook: Arc<Webhook>,
) -> std::io::Result<SocketAddr> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
        let (stream, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let webhook = webhook.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%peer, %error, "webhook TLS handshake failed");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let webhook = webhook.clone();
                async move { Ok::<_, Infallible>(handle(req, &webhook).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "webhook connection ended");
            }
        });
    }
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle(req: Request<Incoming>, webhook: &Webhook) -> Response<Full<Bytes>> {
    let namespace_selected = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => {
            return reply(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec());
        }
        (&Method::POST, "/mutate") => false,
        (&Method::POST, "/mutate/namespace") => true,
        _ => return reply(StatusCode::NOT_FOUND, b"{\"error\":\"not_found\"}".to_vec()),
    };
    let body = match Limited::new(req.into_body(), MAX_REVIEW_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let msg = serde_json::json!({"error": "invalid_body", "message": e.to_string()});
            return reply(StatusCode::PAYLOAD_TOO_LARGE, msg.to_string().into_bytes());
        }
    };
    let review = webhook.review_json(&body, namespace_selected);
    if let Ok(review) = &review {
        let response = &review["response"];
        tracing::info!(
            uid = %response["uid"],
            allowed = %response["allowed"],
            patched = !response["patch"].is_null(),
            warnings = %response["warnings"],
            message = %response["status"]["message"],
            "admission review"
        );
    }
    match review.and_then(|r| serde_json::to_vec(&r)) {
        Ok(bytes) => reply(StatusCode::OK, bytes),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"error": "internal", "message": e.to_string()})
                .to_string()
                .into_bytes(),
        ),
    }
}
