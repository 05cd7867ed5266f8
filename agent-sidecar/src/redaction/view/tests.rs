use serde_json::json;

use super::*;
use crate::policy::gateway::BodyRule;

fn rules(body: &[(&str, RedactMethod)]) -> FieldRedaction {
    FieldRedaction {
        body: body
            .iter()
            .map(|(p, m)| BodyRule {
                pointer: p.to_string(),
                tokens: crate::policy::gateway::pointer_tokens(p).unwrap(),
                method: *m,
                declared: true,
            })
            .collect(),
        ..FieldRedaction::default()
    }
}

fn paths(v: &InputView) -> Vec<(String, RedactMethod)> {
    v.redactions
        .iter()
        .map(|r| (r.path.clone(), r.method))
        .collect()
}

#[test]
fn only_declared_fields_are_kept_hashes_correlate() {
    use RedactMethod::*;
    let key = RedactionKey::generate();
    let r = rules(&[
        ("/amount", Keep),
        ("/iban", Hash),
        ("/beneficiary", Keep),
        ("/beneficiary/account", Hash),
        ("/lines", Keep),
        ("/lines/*/card", Drop),
    ]);
    let body = json!({
        "amount": 120, "iban": "DE02120300000000202051", "memo": "card 4111 1111",
        "beneficiary": {"name": "ACME", "account": "DE02120300000000202051"},
        "lines": [{"sku": "a", "card": "4111"}, {"sku": "b", "card": "4222"}],
        "nested": {"secret": "s"}
    });
    let v = body_view(Some(&r), Some(&key), Some(&body), b"", "v1");
    let h = key.hash_bytes(b"DE02120300000000202051");
    assert_eq!(
        v.body,
        json!({
            "amount": 120, "iban": h,
            "beneficiary": {"name": "ACME", "account": h},
            "lines": [{"sku": "a"}, {"sku": "b"}],
        })
    );
    let text = v.body.to_string();
    assert!(!text.contains("DE0212") && !text.contains("4111") && !text.contains("card 4"));
    let got = paths(&v);
    for want in [
        ("/iban".to_string(), Hash),
        ("/memo".to_string(), Drop),
        ("/beneficiary/account".to_string(), Hash),
        ("/lines/*/card".to_string(), Drop),
        ("/nested".to_string(), Drop),
    ] {
        assert!(got.contains(&want), "{want:?} in {got:?}");
    }
    assert_eq!(got.iter().filter(|(p, _)| p == "/lines/*/card").count(), 1);
    assert_eq!(v.policy_version, "v1");
}

#[test]
fn nothing_declared_keeps_nothing_and_no_key_hashes_nothing() {
    let body = json!({"iban": "DE02", "memo": "x"});
    let v = body_view(None, None, Some(&body), b"", "v1");
    assert_eq!(v.body, Value::Null);
    assert_eq!(paths(&v), [(String::new(), RedactMethod::Drop)]);
    let r = rules(&[("/iban", RedactMethod::Hash)]);
    let v = body_view(Some(&r), None, Some(&body), b"", "v1");
    assert_eq!(
        v.body,
        Value::Null,
        "without a key a hashed field is dropped"
    );
    assert!(paths(&v).contains(&("/iban".into(), RedactMethod::Drop)));
    // Bytes that are not JSON: dropped unless the whole body is kept.
    let v = body_view(Some(&r), None, None, b"iban=DE02", "v1");
    assert_eq!(
        (v.body.clone(), paths(&v)),
        (Value::Null, vec![(String::new(), RedactMethod::Drop)])
    );
    let keep_all = rules(&[("", RedactMethod::Keep)]);
    let v = body_view(Some(&keep_all), None, None, b"a=1\x00", "v1");
    assert_eq!(v.body, json!({"text": "a=1\\x00", "bytes": 4}));
    assert!(v.redactions.is_empty());
}

#[test]
fn the_list_is_bounded() {
    let body = Value::Object((0..200).map(|i| (format!("f{i}"), json!(i))).collect());
    let r = rules(&[("/keep", RedactMethod::Keep)]);
    let v = body_view(Some(&r), None, Some(&body), b"", "v1");
    assert_eq!(v.redactions.len(), MAX_LISTED + 1);
    assert_eq!(v.redactions.last().unwrap().path, "*");
}

#[test]
fn query_and_headers_named_by_the_policy() {
    let key = RedactionKey::generate();
    let mut r = FieldRedaction::default();
    r.query.insert("iban".into(), RedactMethod::Hash);
    r.query.insert("token".into(), RedactMethod::Drop);
    r.headers.insert("x-iban".into(), RedactMethod::Hash);
    r.headers.insert("x-note".into(), RedactMethod::Drop);
    let mut out = Vec::new();
    let q = query_view(
        Some(&r),
        Some(&key),
        Some("page=2&iban=DE02&token=t"),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        q,
        format!(
            "page=2&iban={}",
            key.hash_bytes(b"DE02").replace(':', "%3A")
        )
    );
    assert_eq!(
        query_view(None, Some(&key), Some("iban=DE02"), &mut out).as_deref(),
        Some("iban=DE02"),
        "unnamed parameters are shown"
    );
    let h = header_view(
        Some(&r),
        Some(&key),
        "x-iban",
        b"DE02",
        "DE02".into(),
        &mut out,
    );
    assert_eq!(
        h,
        Some(key.hash_bytes(b"DE02")),
        "the same value hashes alike anywhere"
    );
    assert_eq!(
        header_view(Some(&r), Some(&key), "x-note", b"n", "n".into(), &mut out),
        None
    );
    assert_eq!(
        header_view(Some(&r), Some(&key), "x-other", b"o", "o".into(), &mut out).as_deref(),
        Some("o")
    );
    let got: Vec<&str> = out.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        got,
        [
            "query:iban",
            "query:token",
            "header:x-iban",
            "header:x-note"
        ]
    );
}
