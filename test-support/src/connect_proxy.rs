//! An HTTP `CONNECT` proxy on loopback (hyper, with upgrades): tunnels to
//! the requested `host:port` and records every request target, so a test
//! can tell that a client went through it.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// A running proxy.
pub struct ConnectProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `CONNECT` targets it was asked for, in order.
    pub targets: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The targets seen so far.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().expect("lock").clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a proxy that tunnels every `CONNECT` (needs a tokio runtime).
pub async fn start() -> ConnectProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let targets = Arc::new(Mutex::new(Vec::new()));
    let seen = targets.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move { Ok::<_, Infallible>(handle(req, &seen)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    ConnectProxy {
        addr,
        targets,
        task,
    }
}

fn handle(req: Request<Incoming>, seen: &Mutex<Vec<String>>) -> Response<Empty<Bytes>> {
    let status = |s| {
        let mut r = Response::new(Empty::new());
        *r.status_mut() = s;
        r
    };
    if req.method() != Method::CONNECT {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Some(target) = req.uri().authority().map(|a| a.to_string()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    seen.lock().expect("lock").push(target.clone());
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let Ok(mut upstream) = TcpStream::connect(&target).await else {
            return;
        };
        let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut upstream).await;
    });
    status(StatusCode::OK)
}
