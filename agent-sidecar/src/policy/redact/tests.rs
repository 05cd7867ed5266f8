use super::*;
use crate::policy::CompiledPolicySet;

fn set(tools: &str) -> Result<CompiledPolicySet, String> {
    let dir = std::env::temp_dir().join(format!(
        "redact-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("base.yaml"),
        format!("kind: base\nname: t\nlabel: t\ntools:\n{tools}"),
    )
    .unwrap();
    let out = CompiledPolicySet::load_dir(&dir).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    out
}

const PAY: &str = "  - name: pay
    http: { host: pay.example.test }
    redact:
      body: { /iban: hash, /memo: drop, /beneficiary: keep }
      query: { account: hash }
      headers: { X-Customer: drop }
    attributes:
      amount: { body: /amount, currency: { body: /currency } }
    actions:
      - name: wire
        method: POST
        path: /v1/wires
        redact:
          body: { /memo: keep, /beneficiary/iban: hash }
      - name: list
        method: GET
        path: /v1/wires
";

#[test]
fn tool_and_action_rules_merge_and_attributes_are_kept() {
    let s = set(PAY).expect("compiles");
    let wire = s.redaction("pay", "wire").expect("declared");
    let rules: Vec<(&str, RedactMethod)> = wire
        .body
        .iter()
        .map(|r| (r.pointer.as_str(), r.method))
        .collect();
    for want in [
        ("/iban", RedactMethod::Hash),
        ("/memo", RedactMethod::Keep),
        ("/beneficiary", RedactMethod::Keep),
        ("/beneficiary/iban", RedactMethod::Hash),
        ("/amount", RedactMethod::Keep),
        ("/currency", RedactMethod::Keep),
    ] {
        assert!(rules.contains(&want), "{want:?} in {rules:?}");
    }
    assert_eq!(wire.query.get("account"), Some(&RedactMethod::Hash));
    assert_eq!(wire.headers.get("x-customer"), Some(&RedactMethod::Drop));
    let list = s.redaction("pay", "list").expect("declared");
    assert!(
        list.body
            .iter()
            .any(|r| r.pointer == "/memo" && r.method == RedactMethod::Drop)
    );
    assert_eq!(
        wire.method_at(&["beneficiary", "name"]),
        Some(RedactMethod::Keep)
    );
    assert_eq!(
        wire.method_at(&["beneficiary", "iban"]),
        Some(RedactMethod::Hash)
    );
    assert_eq!(wire.method_at(&["note"]), None);
    assert!(s.redaction("pay", "nope").is_none());
}

#[test]
fn hiding_what_an_attribute_reads_and_bad_pointers_are_refused() {
    for (redact, want) in [
        (
            "body: { /amount: hash }",
            "attribute `amount` reads /amount",
        ),
        (
            "body: { /amount: drop }",
            "attribute `amount` reads /amount",
        ),
        ("body: { \"\": hash }", "attribute `amount` reads /amount"),
        (
            "body: { iban: hash }",
            "`iban` in `redact.body` is not a JSON pointer",
        ),
        (
            "body: { /payer: hash, /payer/name: keep }",
            "names /payer/name inside /payer, which is hashed whole",
        ),
        (
            "query: { ccy: drop }",
            "attribute `amount` reads query `ccy`",
        ),
        ("body: { /iban: forget }", "unknown variant `forget`"),
    ] {
        let tools = format!(
            "  - name: pay
    http: {{ host: pay.example.test }}
    actions:
      - name: wire
        method: POST
        path: /v1/wires
        attributes:
          amount: {{ body: /amount, currency: {{ query: ccy }} }}
        redact:
          {redact}
"
        );
        let e = set(&tools).expect_err(redact);
        assert!(e.contains(want), "{redact}: {e}");
    }
    // Dropping a parent of an attribute keeps the attribute.
    let tools = "  - name: pay
    http: { host: pay.example.test }
    actions:
      - name: wire
        method: POST
        path: /v1/wires
        attributes:
          amount: { body: /payment/amount }
        redact:
          body: { /payment: drop }
";
    let s = set(tools).expect("compiles");
    let r = s.redaction("pay", "wire").unwrap();
    assert_eq!(
        r.method_at(&["payment", "amount"]),
        Some(RedactMethod::Keep)
    );
    assert_eq!(r.method_at(&["payment", "iban"]), Some(RedactMethod::Drop));
}
