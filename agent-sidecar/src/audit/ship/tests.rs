use std::time::{Duration, SystemTime};

use hyper::{StatusCode, header::HeaderValue};

use super::{
    DestinationConfig, ShipError, WebhookSecret,
    cursor::Cursor,
    reader::StoreReader,
    retry::{Backoff, Verdict, classify, parse_retry_after},
    webhook,
};
use crate::audit::{store::AuditConfig, test_support};

#[test]
fn only_429_502_503_504_are_retried() {
    for code in [429, 502, 503, 504] {
        let s = StatusCode::from_u16(code).unwrap();
        assert_eq!(classify(s, None), Verdict::Retry(None), "{code}");
    }
    for code in [400, 413] {
        let s = StatusCode::from_u16(code).unwrap();
        assert_eq!(classify(s, None), Verdict::Rejected, "{code}");
    }
    for code in [401, 403, 404, 500, 501, 301] {
        let s = StatusCode::from_u16(code).unwrap();
        assert_eq!(classify(s, None), Verdict::Stalled, "{code}");
    }
    for code in [200, 202, 204] {
        let s = StatusCode::from_u16(code).unwrap();
        assert_eq!(classify(s, None), Verdict::Delivered, "{code}");
    }
    let after = HeaderValue::from_static("7");
    assert_eq!(
        classify(StatusCode::SERVICE_UNAVAILABLE, Some(&after)),
        Verdict::Retry(Some(Duration::from_secs(7)))
    );
    // A Retry-After on a rejection does not make it retried.
    assert_eq!(
        classify(StatusCode::BAD_REQUEST, Some(&after)),
        Verdict::Rejected
    );
}

#[test]
fn retry_after_takes_seconds_or_an_http_date() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    let v = |s: &'static str| parse_retry_after(&HeaderValue::from_static(s), now);
    assert_eq!(v("120"), Some(Duration::from_secs(120)));
    assert_eq!(v(" 0 "), Some(Duration::ZERO));
    assert_eq!(
        v("Sun, 06 Nov 1994 08:50:07 GMT"),
        Some(Duration::from_secs(30))
    );
    // In the past: no wait.
    assert_eq!(v("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
    assert_eq!(v("-5"), None);
    assert_eq!(v("soon"), None);
    assert_eq!(v("1.5"), None);
    // A huge value is bounded by the backoff's cap.
    let b = Backoff::default();
    assert_eq!(
        b.honour(v("99999999999999999999").unwrap()),
        b.max_retry_after
    );
}

#[test]
fn backoff_doubles_with_jitter_up_to_its_cap() {
    let b = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        max_retry_after: Duration::from_secs(60),
    };
    let mut rng = rand::rng();
    for attempt in 0..40 {
        let ceiling = Duration::from_millis(100)
            .saturating_mul(1 << attempt.min(20))
            .min(Duration::from_secs(2));
        for _ in 0..20 {
            let d = b.delay(attempt, &mut rng);
            assert!(d <= ceiling && d >= ceiling / 2, "{attempt}: {d:?}");
        }
    }
    // Jitter: not always the same wait.
    let waits: std::collections::BTreeSet<_> = (0..20).map(|_| b.delay(3, &mut rng)).collect();
    assert!(waits.len() > 1);
}

#[test]
fn webhook_signature_matches_the_standard_webhooks_example() {
    // The example of the Standard Webhooks specification and libraries.
    let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "test").unwrap();
    let sig = webhook::signature(
        secret.key(),
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1_614_265_330,
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
}

#[test]
fn bad_webhook_secrets_are_refused_with_the_fix() {
    for (text, why) in [
        (
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "does not start with whsec_",
        ),
        ("whsec_not base64!", "not base64"),
        ("whsec_c2hvcnQ=", "has 5 bytes"),
    ] {
        let e = WebhookSecret::parse(text, "--audit-webhook-secret-file s").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(why), "{text}: {msg}");
        assert!(msg.contains("whsec_<base64"), "{msg}");
        assert!(
            !msg.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "the secret leaks: {msg}"
        );
    }
}

#[test]
fn destinations_are_checked() {
    let ok = DestinationConfig::otlp_logs("http://127.0.0.1:4318/");
    assert_eq!(ok.endpoint, "http://127.0.0.1:4318/v1/logs");
    assert!(ok.check(false).is_ok());
    assert_eq!(
        DestinationConfig::otlp_traces("https://otel.example.test").endpoint,
        "https://otel.example.test/v1/traces"
    );
    let err = |d: DestinationConfig, tls: bool| d.check(tls).unwrap_err().to_string();
    assert!(
        err(
            DestinationConfig::otlp_logs("https://c.example.test"),
            false
        )
        .contains("needs TLS")
    );
    assert!(
        DestinationConfig::otlp_logs("https://c.example.test")
            .check(true)
            .is_ok()
    );
    assert!(
        err(DestinationConfig::otlp_logs("ftp://c.example.test"), true).contains("not an http")
    );
    assert!(
        err(
            DestinationConfig::otlp_logs("http://u:p@c.example.test"),
            true
        )
        .contains("credentials")
    );
    let mut d = DestinationConfig::otlp_logs("http://c.example.test");
    d.name = "Bad Name".into();
    assert!(err(d, false).contains("a-z, 0-9"));
    let mut d = DestinationConfig::otlp_logs("http://c.example.test");
    d.batch_size = 0;
    assert!(err(d, false).contains("batch size 0"));
    let mut d = DestinationConfig::otlp_logs("http://c.example.test");
    d.headers = vec![("bad header".into(), "x".into())];
    assert!(err(d, false).contains("header name"));
    let mut d = DestinationConfig::otlp_logs("http://c.example.test");
    d.headers = vec![("webhook-signature".into(), "v1,forged".into())];
    assert!(err(d, false).contains("set by the shipper"));
    let mut d = DestinationConfig::otlp_logs("http://c.example.test");
    d.headers = vec![("authorization".into(), "Bearer t\r\nx: y".into())];
    assert!(err(d, false).contains("invalid value"));
}

#[test]
fn cursor_is_durable_and_held_by_one_shipper() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cursor::open(dir.path(), "otlp-logs").unwrap();
    assert_eq!(c.next_seq(), 0);
    let busy = Cursor::open(dir.path(), "otlp-logs").unwrap_err();
    assert!(matches!(busy, ShipError::Busy { .. }), "{busy}");
    // Another destination has its own cursor.
    let other = Cursor::open(dir.path(), "webhook").unwrap();
    assert_eq!(other.next_seq(), 0);
    c.advance(42, Some("id-41".into())).unwrap();
    drop(c);
    let c = Cursor::open(dir.path(), "otlp-logs").unwrap();
    assert_eq!(c.next_seq(), 42);
    assert_eq!(c.state().last_id.as_deref(), Some("id-41"));
    drop(c);
    std::fs::write(dir.path().join("ship/otlp-logs.cursor"), b"{torn").unwrap();
    let e = Cursor::open(dir.path(), "otlp-logs")
        .unwrap_err()
        .to_string();
    assert!(e.contains("damaged") && e.contains("de-duplicate"), "{e}");
}

fn small_segments(dir: &std::path::Path) -> AuditConfig {
    let mut c = test_support::config(dir);
    c.segment_max_bytes = 4096;
    c.index_every_bytes = 512;
    c
}

#[test]
fn reader_follows_the_log_across_segments_and_stops_at_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::audit::AuditLog::open(small_segments(dir.path())).unwrap();
    for i in 0..100 {
        log.append(test_support::entry(i)).unwrap();
    }
    log.sync().unwrap();
    let segments = crate::audit::store::segment::list_segments(dir.path()).unwrap();
    assert!(segments.len() > 3, "{} segments", segments.len());

    let mut r = StoreReader::new(dir.path(), 0);
    let mut seen = Vec::new();
    loop {
        let b = r.read(7, Some(90)).unwrap();
        assert!(b.lost.is_none());
        if b.lines.is_empty() {
            break;
        }
        assert!(b.lines.len() <= 7);
        seen.extend(b.lines);
    }
    assert_eq!(seen.len(), 90, "stops at the bound");
    for (i, l) in seen.iter().enumerate() {
        assert_eq!(l.seq, i as u64);
        let rec = crate::audit::AuditRecord::parse(&l.line).unwrap();
        assert_eq!(rec.seq, l.seq);
        assert_eq!(rec.to_line(), l.line, "the line as stored");
    }
    // Without a bound: the rest; then nothing until more is written.
    let rest = r.read(1000, None).unwrap();
    assert_eq!(rest.lines.first().map(|l| l.seq), Some(90));
    assert_eq!(rest.lines.last().map(|l| l.seq), Some(99));
    assert!(r.read(1000, None).unwrap().lines.is_empty());
    log.append(test_support::entry(100)).unwrap();
    log.sync().unwrap();
    assert_eq!(r.read(1000, None).unwrap().lines[0].seq, 100);

    // A reader started in the middle (a cursor) seeks with the index.
    for start in [0, 1, 33, 57, 99, 100] {
        let mut r = StoreReader::new(dir.path(), start);
        let b = r.read(3, None).unwrap();
        assert_eq!(b.lines[0].seq, start, "from {start}");
    }
    log.close().unwrap();
}

#[test]
fn reader_reports_segments_deleted_before_shipping_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::audit::AuditLog::open(small_segments(dir.path())).unwrap();
    for i in 0..60 {
        log.append(test_support::entry(i)).unwrap();
    }
    log.close().unwrap();
    let segments = crate::audit::store::segment::list_segments(dir.path()).unwrap();
    // As retention does: the records file goes, the summary stays.
    std::fs::remove_file(&segments[0].records).unwrap();
    std::fs::remove_file(&segments[1].records).unwrap();
    let mut r = StoreReader::new(dir.path(), 0);
    let b = r.read(1000, None).unwrap();
    assert_eq!(b.lost, Some((0, segments[2].first_seq)));
    assert_eq!(b.lines[0].seq, segments[2].first_seq);
    assert_eq!(b.lines.last().unwrap().seq, 59);
}

#[test]
fn reader_refuses_a_hole_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::audit::AuditLog::open(test_support::config(dir.path())).unwrap();
    for i in 0..10 {
        log.append(test_support::entry(i)).unwrap();
    }
    log.close().unwrap();
    let seg = &crate::audit::store::segment::list_segments(dir.path()).unwrap()[0];
    let text = std::fs::read_to_string(&seg.records).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&seg.records, kept.join("\n") + "\n").unwrap();
    let mut r = StoreReader::new(dir.path(), 0);
    let e = r.read(1000, None).unwrap_err().to_string();
    assert!(e.contains("record 5 follows record 3"), "{e}");
    assert!(e.contains("audit verify"), "{e}");
}

#[test]
fn ship_metrics_are_exported_with_the_sidecars_metrics() {
    let m = crate::metrics::Metrics::new();
    let ship = m.audit_ship();
    ship.queue("otlp-logs", 12, 3, 40);
    ship.records("otlp-logs", "rejected", 2);
    ship.request("otlp-logs", "retried");
    let text = m.render();
    for line in [
        r#"agent_sidecar_audit_ship_queue_depth{destination="otlp-logs"} 12"#,
        r#"agent_sidecar_audit_ship_lag_seconds{destination="otlp-logs"} 3"#,
        r#"agent_sidecar_audit_ship_acked_records{destination="otlp-logs"} 40"#,
        r#"agent_sidecar_audit_ship_records_total{destination="otlp-logs",result="rejected"} 2"#,
        r#"agent_sidecar_audit_ship_requests_total{destination="otlp-logs",outcome="retried"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[test]
fn agent_controlled_text_cannot_add_lines_to_a_webhook_batch() {
    // An agent puts a newline and a forged record into what it sends (an
    // argument, a tool name): each record stays one line of the body.
    let dir = tempfile::tempdir().unwrap();
    let log = crate::audit::AuditLog::open(test_support::config(dir.path())).unwrap();
    let forged = "x\n{\"v\":1,\"seq\":0,\"id\":\"forged\"}\r\n";
    for i in 0..3 {
        let mut e = test_support::entry(i);
        e.input.as_mut().unwrap().value = serde_json::json!({ "note": forged });
        e.action.as_mut().unwrap().name = Some(forged.into());
        log.append(e).unwrap();
    }
    log.close().unwrap();
    let lines = StoreReader::new(dir.path(), 0)
        .read(10, None)
        .unwrap()
        .lines;
    assert_eq!(lines.len(), 3);
    let body = webhook::body(&lines);
    let text = String::from_utf8(body).unwrap();
    let got: Vec<_> = text.lines().collect();
    assert_eq!(got.len(), 3, "{text}");
    for (l, s) in got.iter().zip(&lines) {
        let r = crate::audit::AuditRecord::parse(l.as_bytes()).unwrap();
        assert_eq!(r.seq, s.seq);
        assert_ne!(r.id, "forged");
    }
}

#[tokio::test]
async fn a_log_replaced_under_its_cursor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::audit::AuditLog::open(test_support::config(dir.path())).unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(log.append(test_support::entry(i)).unwrap().id);
    }
    log.sync().unwrap();
    let shipper = |log: &crate::audit::AuditLog| {
        let mut c = super::ShipConfig::new(dir.path());
        c.destinations
            .push(DestinationConfig::otlp_logs("http://127.0.0.1:9"));
        super::Shipper::new(
            c,
            super::ShipSource::Log(log.clone()),
            super::ShipMetrics::default(),
        )
    };
    // A cursor whose last record is the one in the log: accepted.
    Cursor::open(dir.path(), "otlp-logs")
        .unwrap()
        .advance(3, Some(ids[2].clone()))
        .unwrap();
    drop(shipper(&log).unwrap());
    // The same position, another record there: refused.
    Cursor::open(dir.path(), "otlp-logs")
        .unwrap()
        .advance(3, Some("0190aaaa-forged".into()))
        .unwrap();
    let e = shipper(&log).unwrap_err().to_string();
    assert!(e.contains("the log was replaced"), "{e}");
    assert!(e.contains("audit verify"), "{e}");
    log.close().unwrap();
}
