//! A plain-HTTP webhook receiver on loopback that keeps every JSON body it
//! is sent (the owner's, the SOC's and the approvers' notifications).

use std::{
    convert::Infallible,
    net::Ipv4Addr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// A plain-HTTP webhook receiver that keeps every JSON body.
pub struct Webhook {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    /// Every JSON body received.
    pub events: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    /// Starts a receiver on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let log = events.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            if let Ok(v) = serde_json::from_slice(&body) {
                                log.lock().unwrap().push(v);
                            }
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Webhook { url, events }
    }

    /// Waits up to 5 s for an event whose `event` field is `kind` and that
    /// `matches`.
    pub async fn wait_matching(&self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            if let Some(e) = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|e| e["event"] == kind && matches(e))
            {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no matching `{kind}` event; got {:?}",
            self.events.lock().unwrap()
        );
    }

    /// Waits up to 5 s for an event whose `event` field is `kind`.
    pub async fn wait_for(&self, kind: &str) -> Value {
        for _ in 0..100 {
            if let Some(e) = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|e| e["event"] == kind)
            {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no `{kind}` event; got {:?}", self.events.lock().unwrap());
    }
}
