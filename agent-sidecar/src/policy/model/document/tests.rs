use super::*;

fn parse_text(text: &str) -> Result<Parsed, Problem> {
    parse("d.yaml".into(), text)
}

#[test]
fn every_kind_parses() {
    for (text, kind, name) in [
        ("kind: base\nname: acme\nlabel: r1\n", Kind::Base, "acme"),
        ("kind: team\nname: fin\n", Kind::Team, "fin"),
        ("kind: role\nname: ops\n", Kind::Role, "ops"),
        (
            "kind: agent\nid: bot\nowner: o\npurpose: p\n",
            Kind::Agent,
            "bot",
        ),
        ("kind: overlay\nenvironment: prod\n", Kind::Overlay, "prod"),
    ] {
        let p = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.doc.kind(), p.doc.name()), (kind, name));
        assert_eq!(document_kind(text), Some(kind));
    }
}

#[test]
fn base_defaults_are_filled() {
    let p = parse_text("kind: base\nname: acme\nlabel: r1\n").unwrap();
    let Document::Base(b) = p.doc else {
        panic!("base")
    };
    assert_eq!(b.environments, ["dev", "staging", "prod"]);
    assert_eq!(b.currency, "USD");
    assert!(b.vocabulary.sensitivity.contains(&"pii".to_string()));
    assert!(b.egress.is_none());
}

#[test]
fn errors_say_where_what_and_how() {
    let cases = [
        (
            "kind: team\nname: fin\nrulez: []\n",
            "d.yaml:3:1",
            "unknown field `rulez`",
        ),
        (
            "kind: agent\nid: bot\npurpose: p\n",
            "d.yaml",
            "missing field `owner`",
        ),
        (
            "kind: team\nname: fin\nrules:\n  - id: a\n    tier: 7\n",
            "d.yaml:5:11",
            "tier 7 does not exist",
        ),
        ("name: fin\n", "d.yaml:1:1", "no `kind`"),
        ("kind: squad\n", "d.yaml:1:7", "unknown kind `squad`"),
        ("kind: team\nname: [\n", "d.yaml:3:1", ""),
    ];
    for (text, at, what) in cases {
        let e = parse_text(text).expect_err(text);
        let shown = e.to_string();
        assert!(shown.starts_with(at), "{text:?}: {shown}");
        assert!(shown.contains(what), "{text:?}: {shown}");
        assert!(shown.contains("help: "), "{text:?}: {shown}");
    }
}

#[test]
fn non_policy_yaml_has_no_kind() {
    assert_eq!(document_kind("version: 1\negress: {allow: []}\n"), None);
    assert_eq!(document_kind("scenarios: []\n"), None);
    assert_eq!(document_kind("[1, 2"), None);
}

#[test]
fn a_repeated_key_is_refused_where_it_repeats() {
    // A second `tier:` silently replacing the first would let a reviewed
    // line be overridden further down the file.
    for (text, at) in [
        ("kind: team\nname: fin\nname: ops\n", "d.yaml:3:1"),
        (
            "kind: team\nname: fin\nrules:\n  - id: a\n    tier: 4\n    tier: 1\n",
            "d.yaml:6:5",
        ),
        ("kind: team\nkind: base\nname: fin\n", "d.yaml:2:1"),
    ] {
        let e = parse_text(text).expect_err(text).to_string();
        assert!(e.starts_with(at), "{text:?}: {e}");
        assert!(e.contains("duplicate"), "{text:?}: {e}");
        assert!(e.contains("help: write each key once"), "{text:?}: {e}");
    }
}
