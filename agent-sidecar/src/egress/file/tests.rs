use super::*;

fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
    PolicyFile::parse(Path::new("p.yaml"), text)
}

#[test]
fn parses_both_entry_forms() {
    let p = parse(
        "version: 1\negress:\n  allow:\n    - 10.0.0.0/8:5432\n    - target: \"[2001:db8::1]:443\"\n      protocol: tcp\n      description: payments\n",
    )
    .unwrap();
    let list = p.allowlist(Path::new("p.yaml"));
    assert_eq!(list.rules().len(), 2);
    assert_eq!(list.rules()[0].target.to_string(), "10.0.0.0/8:5432");
    assert_eq!(list.rules()[0].protocols, Protocols::Any);
    assert_eq!(list.rules()[1].protocols, Protocols::Tcp);
    assert_eq!(
        list.rules()[1].source.to_string(),
        "p.yaml: egress.allow[2]"
    );
}

#[test]
fn errors_name_line_column_and_problem() {
    let cases = [
        (
            "version: 1\negress:\n  allow:\n    - 10.0.0.1/8\n",
            "did you mean `10.0.0.0/8`",
            Some(4),
        ),
        (
            "version: 1\negres:\n  allow: []\n",
            "unknown field `egres`",
            Some(2),
        ),
        (
            "version: 1\negress:\n  allow:\n    - target: 10.0.0.1:80\n      proto: tcp\n",
            "unknown field `proto`",
            None,
        ),
        (
            "version: 1\negress:\n  allow:\n    - target: 10.0.0.1:80\n      protocol: sctp\n",
            "unknown variant `sctp`",
            None,
        ),
        ("version: 2\n", "unsupported version 2", None),
        ("version: 1\negress: [\n", "", Some(2)),
    ];
    for (text, needle, line) in cases {
        let e = parse(text).expect_err(text).to_string();
        assert!(e.contains(needle), "{text:?}: {e}");
        assert!(e.starts_with("invalid policy file p.yaml"), "{e}");
        if let Some(line) = line {
            assert!(
                e.contains(&format!("at line {line} column")),
                "{text:?}: {e}"
            );
        }
    }
}

#[test]
fn names_in_both_forms_with_ports_private_and_force() {
    let p = parse(
        "version: 1\negress:\n  names:\n    - api.github.com:443\n    - name: \"*.blob.example.com\"\n      ports: [443, 8443]\n      protocol: tcp\n      description: buckets\n    - name: db.internal\n      allow_private: true\n    - name: \"*.com\"\n      force: true\n",
    )
    .unwrap();
    let rules = p.name_rules(Path::new("p.yaml"));
    assert_eq!(rules.len(), 4);
    assert_eq!(rules[0].to_string(), "api.github.com:443");
    assert_eq!(rules[1].ports.as_deref(), Some(&[443, 8443][..]));
    assert_eq!(rules[1].protocols, Protocols::Tcp);
    assert!(rules[2].allow_private && rules[2].ports.is_none());
    assert!(!rules[0].allow_private);
    assert!(
        rules[1]
            .source
            .as_ref()
            .is_some_and(|s| s.to_string().contains("p.yaml")),
        "{:?}",
        rules[1].source
    );
}

#[test]
fn name_errors_say_where_and_how_to_fix() {
    let cases = [
        (
            "version: 1\negress:\n  names:\n    - \"*.com\"\n",
            "force",
            4,
        ),
        (
            "version: 1\negress:\n  names:\n    - name: \"*.co.uk\"\n",
            "force",
            4,
        ),
        (
            "version: 1\negress:\n  names:\n    - api..example.com\n",
            "api..example.com",
            4,
        ),
        (
            "version: 1\negress:\n  names:\n    - name: a.example.com\n      ports: []\n",
            "non-empty",
            4,
        ),
        (
            "version: 1\negress:\n  names:\n    - name: a.example.com\n      port: 443\n",
            "unknown field",
            4,
        ),
    ];
    for (text, needle, line) in cases {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
        assert!(e.contains(&format!("line {line}")), "{text}: {e}");
    }
}

#[test]
fn a_repeated_key_is_refused() {
    let e = parse("version: 1\negress:\n  allow: [10.0.0.1:80]\n  allow: [0.0.0.0/0]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("duplicate") && e.contains("at line 4 column"),
        "{e}"
    );
}
