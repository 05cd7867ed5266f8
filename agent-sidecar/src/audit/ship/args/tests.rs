use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use clap::Parser;

use super::*;
use crate::audit::ship::Protocol;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    ship: AuditShipArgs,
}

fn parse(args: &[&str]) -> Result<AuditShipArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.ship)
}

fn private(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

#[test]
fn no_flag_ships_nowhere() {
    assert!(parse(&[]).unwrap().destinations().unwrap().is_empty());
}

#[test]
fn otlp_and_webhook_flags_make_their_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let headers = private(
        dir.path(),
        "h",
        "# the collector's token\nAuthorization: Bearer t0k\n\nX-Tenant: payments\n",
    );
    let secret = private(dir.path(), "s", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n");
    let a = parse(&[
        "--audit-otlp-endpoint",
        "http://localhost:4318",
        "--audit-otlp-headers-file",
        &headers,
        "--audit-otlp-batch-size",
        "100",
        "--audit-otlp-flush-interval",
        "250ms",
        "--audit-webhook",
        "https://siem.example.test/hook",
        "--audit-webhook-secret-file",
        &secret,
        "--audit-webhook-flush-interval",
        "2m",
    ])
    .unwrap();
    let d = a.destinations().unwrap();
    assert_eq!(d.len(), 3);
    assert_eq!(d[0].endpoint, "http://localhost:4318/v1/logs");
    assert_eq!(d[1].endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(d[0].batch_size, 100);
    assert_eq!(d[1].flush_interval, Duration::from_millis(250));
    assert_eq!(
        d[0].headers,
        vec![
            ("Authorization".to_string(), "Bearer t0k".to_string()),
            ("X-Tenant".to_string(), "payments".to_string())
        ]
    );
    assert!(matches!(d[2].protocol, Protocol::Webhook(_)));
    assert_eq!(d[2].batch_size, DEFAULT_BATCH_SIZE);
    assert_eq!(d[2].flush_interval, Duration::from_secs(120));
    // Only the logs.
    let a = parse(&[
        "--audit-otlp-endpoint",
        "http://c:4318",
        "--audit-otlp-signals",
        "logs",
    ])
    .unwrap();
    let d = a.destinations().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].name, "otlp-logs");
}

#[test]
fn bad_flags_and_files_are_refused_with_the_fix() {
    // A webhook without its secret, a secret without its webhook.
    assert!(parse(&["--audit-webhook", "https://h.example.test"]).is_err());
    assert!(parse(&["--audit-webhook-secret-file", "/x"]).is_err());
    assert!(parse(&["--audit-otlp-signals", "logs"]).is_err());
    assert!(
        parse(&[
            "--audit-otlp-endpoint",
            "http://c",
            "--audit-otlp-signals",
            "metrics"
        ])
        .is_err()
    );
    assert!(parse(&["--audit-otlp-batch-size", "0"]).is_err());
    assert!(parse(&["--audit-otlp-batch-size", "10001"]).is_err());
    assert!(parse(&["--audit-otlp-flush-interval", "0s"]).is_err());
    assert!(parse(&["--audit-otlp-flush-interval", "soon"]).is_err());
    let dir = tempfile::tempdir().unwrap();
    // A secret others can read is refused.
    let secret = dir.path().join("open");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let a = parse(&[
        "--audit-webhook",
        "https://h.example.test",
        "--audit-webhook-secret-file",
        secret.to_str().unwrap(),
    ])
    .unwrap();
    let e = a.destinations().unwrap_err().to_string();
    assert!(
        e.contains("readable by others") && e.contains("chmod 600"),
        "{e}"
    );
    // A header line without a colon names its line.
    let headers = private(dir.path(), "h", "Authorization Bearer x\n");
    let a = parse(&[
        "--audit-otlp-endpoint",
        "http://c",
        "--audit-otlp-headers-file",
        &headers,
    ])
    .unwrap();
    let e = a.destinations().unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("Name: value"), "{e}");
}
