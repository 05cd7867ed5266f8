//! A loopback HTTP(S) upstream for the proxy's tests and benchmark: it
//! answers `"<label> host=<Host> path=<path>"` (or 1 MiB at `/1m`) and
//! counts the TCP connections it accepted.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Size of the body served at `/1m`.
pub const MIB: usize = 1024 * 1024;

/// A loopback HTTP(S) server answering `"<label> host=<Host> path=<path>"`
/// (or 1 MiB at `/1m`), counting TCP connections.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    /// Starts a server on `addr` (TLS when `tls` is given).
    pub async fn start(addr: SocketAddr, label: &'static str, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let big = Bytes::from(vec![b'x'; MIB]);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                counter.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                let big = big.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let big = big.clone();
                        async move { Ok::<_, Infallible>(respond(label, &req, big)) }
                    });
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Self { addr, hits }
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn respond(label: &str, req: &Request<Incoming>, big: Bytes) -> Response<Full<Bytes>> {
    if req.uri().path() == "/1m" {
        return Response::new(Full::new(big));
    }
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("-");
    Response::new(Full::new(Bytes::from(format!(
        "{label} host={host} path={}",
        req.uri().path()
    ))))
}
