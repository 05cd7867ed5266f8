use rustls::{ClientConfig, RootCertStore, pki_types::ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::tls::{
    CaOptions, CertificateAuthority, LeafOptions,
    test_support::{cache, generated_ca},
};

/// Runs one handshake over an in-memory pipe; returns the client's result
/// and the negotiated ALPN protocol.
async fn handshake(
    ca: Arc<CertificateAuthority>,
    server_name: ServerName<'static>,
) -> Result<Option<Vec<u8>>, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let leaves = Arc::new(cache(Arc::clone(&ca), LeafOptions::default()));
    let server = agent_server_config(leaves, Arc::clone(&provider)).expect("server config");
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).expect("root");
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let accept = TlsAcceptor::from(Arc::new(server)).accept(server_io);
    let connect = TlsConnector::from(Arc::new(client)).connect(server_name, client_io);
    let (_, connected) = tokio::join!(accept, connect);
    connected.map(|s| s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
}

fn name(n: &str) -> ServerName<'static> {
    ServerName::try_from(n.to_owned()).expect("server name")
}

#[tokio::test]
async fn allowed_name_gets_a_verifiable_certificate_and_h2() {
    let alpn = handshake(generated_ca(), name("api.example.com"))
        .await
        .expect("handshake");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn refused_name_fails_the_handshake() {
    let err = handshake(generated_ca(), name("evil.test"))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("fatal alert"), "{err}");
}

#[tokio::test]
async fn missing_sni_fails_the_handshake() {
    // rustls clients send no SNI for an IP address.
    let ip = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let err = handshake(generated_ca(), ip).await.expect_err("no SNI");
    assert!(err.to_string().contains("fatal alert"), "{err}");
}

#[tokio::test]
async fn clients_enforce_the_ca_name_constraints() {
    // The policy allows every name under example.com, but the CA is only
    // permitted for api.example.com: a client must reject other leaves.
    let ca = CertificateAuthority::generate(&CaOptions {
        permitted_dns: vec!["api.example.com".into()],
        ..CaOptions::default()
    })
    .expect("ca");
    let ca = Arc::new(ca);
    handshake(Arc::clone(&ca), name("v1.api.example.com"))
        .await
        .expect("inside the constraints");
    let err = handshake(ca, name("www.example.com"))
        .await
        .expect_err("outside the constraints");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}
