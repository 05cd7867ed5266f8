use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::policy::{
    action::Money,
    interned::{Interned, describe_invalid, intern_given},
    vocab::Vocab,
};

fn vocab() -> Vocab {
    Vocab {
        currency: "USD".into(),
        rates: [("EUR".to_string(), 2.0)].into(),
        sensitivity: vec!["public".into(), "pii".into()],
        regulatory: vec!["gdpr".into()],
    }
}

#[test]
fn query_strings_are_split_and_decoded() {
    let (path, q) = split_query("/v1/x?limit=10&name=a%20b+c&flag&bad=%zz&tail=%4");
    assert_eq!(path, "/v1/x");
    assert_eq!(
        q,
        [
            ("limit".into(), "10".into()),
            ("name".into(), "a b c".into()),
            ("flag".into(), String::new()),
            ("bad".into(), "%zz".into()),
            ("tail".into(), "%4".into()),
        ]
    );
    assert_eq!(split_query("/plain"), ("/plain", Vec::new()));
}

#[test]
fn values_are_read_as_their_attribute() {
    let a = interpret(Attr::Amount, &json!("12.5"), false, Some("EUR")).unwrap();
    assert_eq!(
        a.amount,
        Some(Money {
            value: 12.5,
            currency: Some("EUR".into())
        })
    );
    let r = interpret(Attr::Records, &json!([1, 2, 3]), true, None).unwrap();
    assert_eq!(r.records, Some(3));
    assert!(interpret(Attr::Records, &json!(2.5), false, None).is_err());
    assert!(interpret(Attr::Records, &json!(-1), false, None).is_err());
    let s = interpret(Attr::Sensitivity, &json!("pii, public"), false, None).unwrap();
    assert_eq!(s.sensitivity, Some(vec!["pii".into(), "public".into()]));
    assert!(interpret(Attr::Reversibility, &json!("maybe"), false, None).is_err());
}

#[test]
fn interning_converts_currencies_and_refuses_unknown_classes() {
    let v = vocab();
    let eur = Attributes {
        amount: Some(Money {
            value: -10.0,
            currency: Some("eur".into()),
        }),
        ..Default::default()
    };
    assert_eq!(
        intern_given(&eur, Attr::Amount, &v),
        Some(Ok(Interned::Number(20.0)))
    );
    let jpy = Attributes {
        amount: Some(Money {
            value: 1.0,
            currency: Some("JPY".into()),
        }),
        ..Default::default()
    };
    assert_eq!(intern_given(&jpy, Attr::Amount, &v), Some(Err(())));
    assert_eq!(
        describe_invalid(&jpy, Attr::Amount, &v),
        "no exchange rate for currency `JPY`"
    );
    let classes = Attributes {
        sensitivity: Some(vec!["pii".into(), "public".into()]),
        regulatory: Some(vec!["sox".into()]),
        ..Default::default()
    };
    assert_eq!(
        intern_given(&classes, Attr::Sensitivity, &v),
        Some(Ok(Interned::Bits(0b11)))
    );
    assert_eq!(intern_given(&classes, Attr::Regulatory, &v), Some(Err(())));
    assert_eq!(
        describe_invalid(&classes, Attr::Regulatory, &v),
        "unknown regulatory scope `sox`"
    );
    assert_eq!(intern_given(&classes, Attr::Records, &v), None);
}

#[test]
fn requests_are_read_from_body_query_headers_and_constants() {
    let mut sources: [Option<Extract>; 5] = Default::default();
    let src = |from: From| Extract {
        from,
        count: false,
        currency: None,
    };
    sources[Attr::Amount as usize] = Some(Extract {
        currency: Some(Box::new(src(From::Header("x-currency".into())))),
        ..src(From::Body("/payment/amount".into()))
    });
    sources[Attr::Records as usize] = Some(src(From::Query("limit".into())));
    sources[Attr::Regulatory as usize] = Some(src(From::Const(json!(["gdpr"]))));
    sources[Attr::Sensitivity as usize] = Some(src(From::Body("/missing".into())));
    let body = json!({"payment": {"amount": 70}});
    let headers: BTreeMap<String, String> = [("X-Currency".to_string(), "eur".to_string())].into();
    let view = RequestView {
        body: Some(&body),
        query: vec![("limit".into(), "25".into())],
        headers: &headers,
    };
    let a = extract_all(&sources, &view);
    assert_eq!(
        a.amount,
        Some(Money {
            value: 70.0,
            currency: Some("EUR".into())
        })
    );
    assert_eq!(a.records, Some(25));
    assert_eq!(a.regulatory, Some(vec!["gdpr".into()]));
    assert_eq!(a.sensitivity, None, "absent values stay unknown");

    // A declared currency that is absent makes the amount unusable.
    let no_currency = RequestView {
        body: Some(&body),
        query: Vec::new(),
        headers: &BTreeMap::new(),
    };
    assert_eq!(extract_all(&sources, &no_currency).amount, None);
}
