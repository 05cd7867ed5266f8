use super::*;
use crate::proxy::testing::client_hello;

/// Alert record: type 21, two version bytes, length 2, level, description.
fn alert_description(record: &[u8]) -> (u8, u8) {
    assert_eq!(record.len(), 7, "{record:02x?}");
    assert_eq!(record[0], 0x15, "not an alert record: {record:02x?}");
    assert_eq!(&record[3..5], &[0, 2]);
    (record[5], record[6])
}

#[test]
fn complete_hello_gets_access_denied_from_rustls() {
    let hello = client_hello(Some("evil.test"), false);
    assert_eq!(alert_description(&tls_alert(&hello)), (2, 49));
    let no_sni = client_hello(None, false);
    assert_eq!(alert_description(&tls_alert(&no_sni)), (2, 49));
}

#[test]
fn garbage_gets_a_fatal_alert_from_rustls() {
    let (level, description) = alert_description(&tls_alert(b"\x16\x03\x01\x00\x05hello"));
    assert_eq!(level, 2);
    assert_ne!(description, 0);
}

#[test]
fn incomplete_hello_gets_handshake_failure() {
    let hello = client_hello(Some("api.allowed.test"), false);
    assert_eq!(alert_description(&tls_alert(&hello[..40])), (2, 40));
}

#[test]
fn json_body_shape() {
    let denial = Denial::policy(HostRefusal::new(
        "not_allowlisted",
        "no rule allows evil.test",
    ));
    let body: serde_json::Value =
        serde_json::from_str(&denial.json_body(Some("evil.test"), 443)).expect("json");
    assert_eq!(
        body,
        serde_json::json!({
            "error": "egress_refused",
            "host": "evil.test",
            "port": 443,
            "reason": "not_allowlisted",
            "rule": "no rule allows evil.test",
        })
    );
    let dns = Denial::upstream("dns_failure", "nx");
    assert!(
        dns.json_body(None, 80)
            .contains("\"error\":\"bad_gateway\"")
    );
}

#[test]
fn http_response_is_parseable_and_closes() {
    let denial = Denial::forbidden("host_ip_literal", "names only");
    let raw = denial.http_response(Some("10.0.0.1"), 80);
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(&raw).expect("parse") else {
        panic!("partial response");
    };
    assert_eq!(response.code, Some(403));
    let length = response
        .headers
        .iter()
        .find(|h| h.name == "content-length")
        .map(|h| {
            std::str::from_utf8(h.value)
                .expect("utf8")
                .parse::<usize>()
                .expect("len")
        })
        .expect("content-length");
    assert_eq!(raw.len() - head_len, length);
    assert!(
        response
            .headers
            .iter()
            .any(|h| h.name == "connection" && h.value == b"close")
    );
}
