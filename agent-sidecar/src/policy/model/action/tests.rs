use super::*;

#[test]
fn money_accepts_bare_numbers_and_objects() {
    let m: Money = serde_json::from_str("120.5").unwrap();
    assert_eq!(
        m,
        Money {
            value: 120.5,
            currency: None
        }
    );
    let m: Money = serde_json::from_str(r#"{"value": 7, "currency": "EUR"}"#).unwrap();
    assert_eq!(m.currency.as_deref(), Some("EUR"));
    let e = serde_json::from_str::<Money>(r#"{"amount": 7}"#).unwrap_err();
    assert!(
        e.to_string().contains("{value: NUMBER, currency: CODE}"),
        "{e}"
    );
}

#[test]
fn action_input_rejects_mixed_forms() {
    let mixed: ActionInput = serde_json::from_str(
        r#"{"agent": "a", "environment": "prod", "tool": "erp",
            "http": {"host": "h", "method": "GET", "path": "/"}}"#,
    )
    .unwrap();
    assert!(
        mixed
            .request()
            .unwrap_err()
            .to_string()
            .contains("cannot be combined")
    );
    let raw: ActionInput = serde_json::from_str(
        r#"{"agent": "a", "environment": "prod", "mcp": {"server": "crm", "tool": "refund"}}"#,
    )
    .unwrap();
    assert!(matches!(raw.request(), Ok(Some(Request::Mcp(_)))));
}

#[test]
fn unknown_keys_are_rejected() {
    let e = serde_json::from_str::<ActionInput>(r#"{"agent": "a", "environment": "e", "tol": 1}"#)
        .unwrap_err();
    assert!(e.to_string().contains("unknown field `tol`"), "{e}");
}

#[test]
fn reversibility_is_ordered_by_severity() {
    assert!(Reversibility::Irreversible > Reversibility::Compensable);
    assert_eq!(
        Reversibility::parse("compensable"),
        Some(Reversibility::Compensable)
    );
    assert_eq!(Reversibility::parse("maybe"), None);
}
