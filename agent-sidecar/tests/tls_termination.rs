//! TLS termination with real clients: a terminating listener on 127.0.0.1
//! serving a tiny HTTP/1.1 + HTTP/2 app that answers with the SNI it saw,
//! reached by the real `curl` and Python `requests` through the written
//! agent trust bundle; and the upstream side against a local rustls server.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Output,
    sync::Arc,
};

use agent_sidecar::tls::{
    AgentTrustBundle, CaOptions, CertificateAuthority, MayTerminate, SystemRoots,
    TerminatorOptions, TlsError, TlsTerminator, TrustAnchors,
};
use agent_sidecar_test_support::ca::TestCa;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    process::Command,
};

const ALLOWED: &str = "tools.allowed.test";
const REFUSED: &str = "tools.refused.test";
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const PYTHON: &str = "/usr/bin/python3";

/// A fresh directory, removed when the returned guard drops.
fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tls-termination-{tag}-"))
        .tempdir()
        .expect("temp dir")
}

fn terminator(ca: CertificateAuthority, operator_cas: &[PathBuf]) -> TlsTerminator {
    let allow: MayTerminate = Arc::new(|name: &str| name.ends_with(".allowed.test"));
    let anchors = TrustAnchors::load(&SystemRoots::Probe, operator_cas).expect("trust anchors");
    TlsTerminator::new(ca, anchors, allow, TerminatorOptions::default()).expect("terminator")
}

/// Accepts connections forever, terminates TLS and serves the echo app
/// over the negotiated protocol.
async fn serve(listener: TcpListener, terminator: Arc<TlsTerminator>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let terminator = Arc::clone(&terminator);
        tokio::spawn(async move {
            let Ok((tls, sni)) = terminator.accept(tcp).await else {
                return;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let body = format!("sni={sni} version={:?}\n", req.version());
                async move { Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(body)))) }
            });
            let io = TokioIo::new(tls);
            // Connection errors end only this connection.
            let _ = if h2 {
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await
            } else {
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
            };
        });
    }
}

struct Gateway {
    port: u16,
    bundle: AgentTrustBundle,
    /// Holds the bundle's directory until the test ends.
    _dir: tempfile::TempDir,
}

async fn start_gateway(tag: &str) -> Gateway {
    let ca = CertificateAuthority::generate(&CaOptions {
        permitted_dns: vec!["*.allowed.test".into(), "*.refused.test".into()],
        ..CaOptions::default()
    })
    .expect("CA");
    let terminator = Arc::new(terminator(ca, &[]));
    let dir = temp_dir(tag);
    let bundle = terminator
        .write_agent_bundle(dir.path())
        .expect("trust bundle");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(serve(listener, terminator));
    Gateway {
        port,
        bundle,
        _dir: dir,
    }
}

async fn curl(gw: &Gateway, name: &str, cacert: &Path, version: &str) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10", version, "--cacert"])
        .arg(cacert)
        .arg("--resolve")
        .arg(format!("{name}:{}:127.0.0.1", gw.port))
        .arg(format!("https://{name}:{}/tool", gw.port))
        .env_remove("SSL_CERT_FILE")
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .await
        .expect("run curl")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http2_and_http1_through_the_trust_bundle() {
    let gw = start_gateway("curl").await;
    let h2 = curl(&gw, ALLOWED, &gw.bundle.bundle, "--http2").await;
    assert!(h2.status.success(), "{h2:?}");
    assert_eq!(stdout(&h2), format!("sni={ALLOWED} version=HTTP/2.0\n"));
    let h1 = curl(&gw, ALLOWED, &gw.bundle.bundle, "--http1.1").await;
    assert!(h1.status.success(), "{h1:?}");
    assert_eq!(stdout(&h1), format!("sni={ALLOWED} version=HTTP/1.1\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_handshake_fails_for_a_refused_name() {
    let gw = start_gateway("curl-refused").await;
    let out = curl(&gw, REFUSED, &gw.bundle.bundle, "--http2").await;
    // 35: SSL connect error (the sidecar answered with a handshake alert).
    assert_eq!(out.status.code(), Some(35), "{out:?}");
    assert!(stdout(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_not_trusting_the_sidecar_ca_fails() {
    let gw = start_gateway("curl-untrusted").await;
    let out = curl(&gw, ALLOWED, Path::new(SYSTEM_BUNDLE), "--http2").await;
    // 60: peer certificate cannot be authenticated with known CA certificates.
    assert_eq!(out.status.code(), Some(60), "{out:?}");
}

/// Runs Python `requests` against `https://{name}:{port}/tool` with the
/// name resolved to 127.0.0.1; prints the body, or `SSLError` and exits 3.
async fn python_requests(gw: &Gateway, name: &str, env: &[(&str, PathBuf)]) -> Output {
    const SCRIPT: &str = r#"
import socket, sys, requests
name, port = sys.argv[1], int(sys.argv[2])
real = socket.getaddrinfo
def fake(host, *args, **kwargs):
    return real("127.0.0.1" if host == name else host, *args, **kwargs)
socket.getaddrinfo = fake
try:
    r = requests.get(f"https://{name}:{port}/tool", timeout=10)
except requests.exceptions.SSLError as e:
    print("SSLError", e)
    sys.exit(3)
print(r.text, end="")
"#;
    let mut cmd = Command::new(PYTHON);
    cmd.args(["-c", SCRIPT, name, &gw.port.to_string()])
        .env_remove("SSL_CERT_FILE")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().await.expect("run python3")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_with_the_agent_environment() {
    let gw = start_gateway("python").await;
    let env = gw.bundle.env.clone();
    let ok = python_requests(&gw, ALLOWED, &env).await;
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(stdout(&ok), format!("sni={ALLOWED} version=HTTP/1.1\n"));

    let refused = python_requests(&gw, REFUSED, &env).await;
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");

    let untrusted = python_requests(
        &gw,
        ALLOWED,
        &[("REQUESTS_CA_BUNDLE", PathBuf::from(SYSTEM_BUNDLE))],
    )
    .await;
    assert_eq!(untrusted.status.code(), Some(3), "{untrusted:?}");
    assert!(
        stdout(&untrusted).contains("CERTIFICATE_VERIFY_FAILED"),
        "{untrusted:?}"
    );
}

/// A local TLS echo server presenting a certificate for `upstream.test`
/// (whatever the SNI) signed by a CA of its own; returns its address and
/// that CA's PEM.
async fn upstream_server() -> (SocketAddr, String) {
    let ca = TestCa::new();
    let acceptor = ca.leaf(&["upstream.test"]).acceptor();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 64];
                if let Ok(n) = tls.read(&mut buf).await {
                    let _ = tls.write_all(&buf[..n]).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (addr, ca.cert_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_requires_a_trusted_certificate() {
    let (addr, upstream_ca) = upstream_server().await;
    let sidecar_ca = || CertificateAuthority::generate(&CaOptions::default()).expect("CA");

    let strict = terminator(sidecar_ca(), &[]);
    let err = strict
        .connect(
            "upstream.test",
            addr.port(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )
        .await
        .expect_err("unknown issuer must fail");
    let TlsError::UpstreamHandshake { source, .. } = &err else {
        panic!("unexpected error {err}");
    };
    let inner = source
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(inner, Some(rustls::Error::InvalidCertificate(_))),
        "{err}"
    );

    let dir = temp_dir("upstream");
    let ca_file = dir.path().join("internal-ca.pem");
    std::fs::write(&ca_file, upstream_ca).expect("write CA file");
    let trusting = terminator(sidecar_ca(), &[ca_file]);
    let mut tls = trusting
        .connect(
            "upstream.test",
            addr.port(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )
        .await
        .expect("operator CA makes it verify");
    tls.write_all(b"ping").await.expect("write");
    let mut echoed = Vec::new();
    tls.read_to_end(&mut echoed).await.expect("read");
    assert_eq!(echoed, b"ping");

    // The right CA but the wrong name still fails.
    let err = trusting
        .connect("other.test", addr.port(), IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .expect_err("name mismatch");
    assert!(matches!(err, TlsError::UpstreamHandshake { .. }), "{err}");
}
