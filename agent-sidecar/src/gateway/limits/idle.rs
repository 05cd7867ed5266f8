//! Closing a connection on which no request has started for a while.
//!
//! hyper bounds an idle HTTP/1 connection by its header read timeout, but an
//! HTTP/2 connection whose peer answers keep-alive pings stays open for ever.
//! [`serve_until_idle`] serves a connection and, once no request has been
//! running or started for the idle timeout, shuts it down gracefully
//! (HTTP/2 GOAWAY: streams still sending their answers finish, new ones go
//! to a new connection).

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::{rt::TokioExecutor, server::conn::auto::Builder};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::{Instant, sleep_until},
};

/// The requests of one connection: how many are being handled, and when
/// the last one started or ended.
#[derive(Clone)]
struct Activity(Arc<ActivityState>);

struct ActivityState {
    running: AtomicUsize,
    last: Mutex<Instant>,
}

/// Marks a request as running until dropped.
struct Running(Activity);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.touch();
        self.0.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(ActivityState {
            running: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }))
    }

    fn start(&self) -> Running {
        self.0.running.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Running(self.clone())
    }

    fn touch(&self) {
        *self.0.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes once no request has been running for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            sleep_until(self.last() + timeout).await;
            if self.0.running.load(Ordering::Acquire) == 0
                && self.last() + timeout <= Instant::now()
            {
                return;
            }
            if self.0.running.load(Ordering::Acquire) > 0 {
                // A request is being handled: look again a timeout later.
                self.touch();
            }
        }
    }
}

/// Serves `io` with `builder` and `handle` until the peer closes, or until
/// no request has been running for `idle_timeout`, when the connection is
/// shut down gracefully. Returns hyper's error, if any.
pub async fn serve_until_idle<IO, F, Fut, B>(
    builder: &Builder<TokioExecutor>,
    io: IO,
    idle_timeout: Duration,
    handle: F,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Activity::new();
    let tracked = activity.clone();
    let service = service_fn(move |req| {
        let running = tracked.start();
        let response = handle(req);
        async move {
            let response = response.await;
            drop(running);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        () = activity.idle(idle_timeout) => {
            tracing::debug!(?idle_timeout, "idle gateway connection: shutting down");
            conn.as_mut().graceful_shutdown();
        }
    }
    conn.await
}
