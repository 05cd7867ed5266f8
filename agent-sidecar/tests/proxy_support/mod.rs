//! Shared by `tests/proxy.rs` and `benches/proxy.rs`: a test CA (rcgen),
//! loopback HTTP/HTTPS upstreams that count their connections, a name policy,
//! a resolver backed by a map, and the proxy listeners wired to them.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use agent_sidecar::proxy::{
    Allowed, ExplicitProxy, HostPolicy, HostRefusal, ProxyContext, Resolve, ResolveError,
    ResolveFuture, TransparentListener,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
};
use tokio::{net::TcpListener, sync::oneshot};
use tokio_rustls::TlsAcceptor;

/// Size of the body served at `/1m`.
pub const MIB: usize = 1024 * 1024;

/// A throwaway CA and a server certificate for `names`, signed by it.
pub struct TestCa {
    /// PEM file of the CA certificate (for curl `--cacert`, requests
    /// `verify=`).
    // The benchmark includes this module too; its clients use
    // `client_config` instead.
    #[allow(dead_code)]
    pub ca_file: PathBuf,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    _dir: TempDir,
}

impl TestCa {
    /// Creates the CA and the server certificate.
    pub fn new(names: &[&str]) -> Self {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "agent-sidecar proxy test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .expect("server config");
        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.der().clone()).expect("root");
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();

        let dir = TempDir::new();
        let ca_file = dir.0.join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("write CA");
        Self {
            ca_file,
            server: Arc::new(server),
            client: Arc::new(client),
            _dir: dir,
        }
    }

    /// A rustls client trusting only this CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }

    /// The TLS acceptor of the upstream servers.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server.clone())
    }
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "agent-sidecar-proxy-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

/// Allows exactly the listed names, on any port.
pub struct AllowList(pub Vec<String>);

impl HostPolicy for AllowList {
    fn decide(&self, host: &str, _port: u16) -> Result<Allowed, HostRefusal> {
        if self.0.iter().any(|n| n == host) {
            Ok(Allowed::new(format!("allow-{host}")))
        } else {
            Err(HostRefusal::new(
                "not_allowlisted",
                format!("no egress rule allows {host}"),
            ))
        }
    }
}

/// Resolves from a fixed map; names not in it do not exist.
pub struct MapResolve(pub HashMap<String, Vec<IpAddr>>);

impl Resolve for MapResolve {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            self.0
                .get(host)
                .cloned()
                .ok_or_else(|| ResolveError::NoAddress {
                    host: host.to_owned(),
                })
        })
    }
}

/// Running proxy listeners; they stop when this is dropped.
pub struct Proxies {
    /// The explicit proxy.
    pub explicit: SocketAddr,
    /// Transparent listeners, by original port.
    pub transparent: HashMap<u16, SocketAddr>,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Proxies {
    /// Starts an explicit proxy and one transparent listener per original
    /// port, all on 127.0.0.1.
    pub fn start(ctx: &ProxyContext, original_ports: &[u16]) -> Self {
        let mut stop = Vec::new();
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let explicit = ExplicitProxy::bind(any, ctx.clone()).expect("bind explicit");
        let explicit_addr = explicit.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        stop.push(tx);
        tokio::spawn(explicit.serve(async move {
            let _ = rx.await;
        }));
        let mut transparent = HashMap::new();
        for &port in original_ports {
            let listener =
                TransparentListener::bind(any, port, ctx.clone()).expect("bind transparent");
            transparent.insert(port, listener.local_addr().expect("addr"));
            let (tx, rx) = oneshot::channel::<()>();
            stop.push(tx);
            tokio::spawn(listener.serve(async move {
                let _ = rx.await;
            }));
        }
        Self {
            explicit: explicit_addr,
            transparent,
            _stop: stop,
        }
    }
}
