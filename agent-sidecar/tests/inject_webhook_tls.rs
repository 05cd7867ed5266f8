//! The injection webhook served over TLS and called by curl, as the API
//! server calls it; the certificate is replaced on disk and picked up.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use agent_sidecar::inject::certs::ReloadingCert;
use agent_sidecar::inject::review::Webhook;
use agent_sidecar::inject::server;
use rcgen::{CertificateParams, KeyPair};
use serde_json::Value;

/// Writes a self-signed certificate for `localhost` to `dir`; returns its PEM.
fn write_cert(dir: &Path) -> String {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("tls.key.new"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("tls.crt.new"), cert.pem()).unwrap();
    // Replace both atomically, as a Secret update swaps them.
    std::fs::rename(dir.join("tls.key.new"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join("tls.crt.new"), dir.join("tls.crt")).unwrap();
    cert.pem()
}

fn curl(port: u16, ca: &Path, path: &str, body: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail-with-body", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"));
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(format!("@{}", body.display()));
    }
    cmd.arg(format!("https://localhost:{port}{path}"));
    let out = cmd.output().expect("curl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_curl_over_tls_and_reloads_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let ca1 = dir.path().join("ca1.pem");
    std::fs::write(&ca1, &first).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = Arc::new(
        ReloadingCert::new(
            dir.path().join("tls.crt"),
            dir.path().join("tls.key"),
            provider,
        )
        .unwrap(),
    );
    let tls = server::tls_config(cert.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let webhook = Arc::new(Webhook::defaults(
        "registry.example.com/agent-sidecar:0.1.0",
    ));
    tokio::spawn(server::serve(listener, tls, webhook));
    tokio::spawn(cert.watch(Duration::from_millis(100)));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/admission");

    let ca = ca1.clone();
    let fx = fixtures.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        curl(port, &ca, "/mutate", Some(&fx.join("labelled_pod.json")))
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    let review: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(review["response"]["allowed"], true);
    assert_eq!(review["response"]["patchType"], "JSONPatch");

    let ca = ca1.clone();
    let fx = fixtures.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        curl(port, &ca, "/mutate", Some(&fx.join("missing_owner.json")))
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    let review: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(review["response"]["allowed"], false, "{out}");

    // A new certificate on disk is served without a restart; the old
    // trust anchor then no longer verifies.
    let second = write_cert(dir.path());
    let ca2 = dir.path().join("ca2.pem");
    std::fs::write(&ca2, &second).unwrap();
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ca = ca2.clone();
        let (ok, _) = tokio::task::spawn_blocking(move || curl(port, &ca, "/healthz", None))
            .await
            .unwrap();
        if ok {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the replaced certificate was never served");
    let (ok, out) = tokio::task::spawn_blocking(move || curl(port, &ca1, "/healthz", None))
        .await
        .unwrap();
    assert!(!ok, "the old certificate is still served: {out}");
}
