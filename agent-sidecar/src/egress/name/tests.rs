use std::borrow::Cow;

use super::*;
use proptest::prelude::*;

fn p(s: &str) -> NamePattern {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn forced(s: &str) -> NamePattern {
    NamePattern::parse(s, Breadth::Forced).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn parses_the_three_kinds_in_canonical_form() {
    assert_eq!(p("API.Example.COM.").to_string(), "api.example.com");
    assert_eq!(p("api.example.com").kind(), PatternKind::Exact);
    assert_eq!(p("*.example.com").kind(), PatternKind::OneLabel);
    assert_eq!(p("**.example.com").kind(), PatternKind::AnyDepth);
    assert_eq!(p("**.Example.com.").to_string(), "**.example.com");
    assert_eq!(p("*.example.com").base(), "example.com");
    assert_eq!(
        p(" _sip._tcp.example.com ").to_string(),
        "_sip._tcp.example.com"
    );
}

#[test]
fn unicode_and_punycode_are_the_same_name() {
    let unicode = p("api.bücher.example");
    assert_eq!(unicode.to_string(), "api.xn--bcher-kva.example");
    assert_eq!(unicode, p("API.XN--BCHER-KVA.example."));
    assert!(unicode.matches("api.bücher.example"));
    assert!(unicode.matches("api.xn--bcher-kva.example."));
    assert!(p("*.bücher.example").matches("x.xn--bcher-kva.example"));
}

#[test]
fn one_label_wildcard_covers_exactly_one_more_label() {
    let pat = p("*.example.com");
    assert!(pat.matches("a.example.com"));
    assert!(pat.matches("A.EXAMPLE.COM."));
    assert!(!pat.matches("example.com"));
    assert!(!pat.matches("a.b.example.com"));
    assert!(!pat.matches("aexample.com"));
    assert!(!pat.matches("a.example.com.evil"));
}

#[test]
fn any_depth_wildcard_covers_one_or_more_labels() {
    let pat = p("**.example.com");
    assert!(pat.matches("a.example.com"));
    assert!(pat.matches("a.b.c.example.com"));
    assert!(!pat.matches("example.com"));
    assert!(!pat.matches("badexample.com"));
}

#[test]
fn exact_covers_only_the_name() {
    let pat = p("api.example.com");
    assert!(pat.matches("api.example.com."));
    assert!(!pat.matches("x.api.example.com"));
    assert!(!pat.matches("example.com"));
}

#[test]
fn forced_root_wildcards_match_by_depth() {
    assert!(forced("*").matches("localhost"));
    assert!(!forced("*").matches("a.b"));
    assert!(forced("**").matches("a.b.c"));
    assert!(forced("*.com").matches("example.com"));
    assert!(forced("**.co.uk").matches("a.b.co.uk"));
}

#[test]
fn too_broad_patterns_need_force() {
    for (input, needle) in [
        ("*", "every name"),
        ("**", "every name"),
        ("*.com", "top-level domain"),
        ("**.io", "top-level domain"),
        ("*.co.uk", "public suffix"),
        ("**.co.uk", "public suffix"),
        ("*.github.io", "public suffix"),
        ("*.s3.amazonaws.com", "public suffix"),
    ] {
        let e = input.parse::<NamePattern>().expect_err(input);
        assert_eq!(e.kind, NameErrorKind::TooBroad, "{input}");
        let msg = e.to_string();
        assert!(msg.contains(needle), "{input}: {msg}");
        assert!(
            msg.contains("force: true"),
            "{input}: must say how to force: {msg}"
        );
        NamePattern::parse(input, Breadth::Forced).expect(input);
    }
    // A registrable domain under a public suffix, and exact suffixes, are fine.
    p("*.example.co.uk");
    p("**.example.github.io");
    p("co.uk");
}

#[test]
fn rejects_invalid_names_with_what_and_how() {
    let long_label = "a".repeat(64);
    let long_name = format!("{}.com", ["abcdefghi"; 26].join("."));
    for (input, needle) in [
        ("", "empty"),
        ("   ", "empty"),
        (".", "root"),
        ("a..example.com", "empty label"),
        (".example.com", "empty label"),
        ("api.*.example.com", "leftmost"),
        ("api.example.*", "leftmost"),
        ("a*.example.com", "inside the label"),
        ("***.example.com", "inside the label"),
        ("exa!mple.com", "`!` is not allowed"),
        ("exa mple.com", "is not allowed"),
        (&format!("{long_label}.com"), "at most 63"),
        (&long_name, "at most 253"),
        ("-api.example.com", "starts or ends with `-`"),
        ("xn--a.example", "IDNA"),
        ("10.0.0.5", "IP address"),
    ] {
        let e = input.parse::<NamePattern>().expect_err(input);
        assert_eq!(e.kind, NameErrorKind::Invalid, "{input}");
        let msg = e.to_string();
        assert!(msg.contains(needle), "{input}: {msg}");
        assert!(
            msg.contains("write HOST"),
            "{input}: must say how to fix: {msg}"
        );
    }
}

#[test]
fn canonical_name_normalises_lookups() {
    assert_eq!(
        canonical_name("Api.Example.com.").as_deref(),
        Some("api.example.com")
    );
    assert_eq!(
        canonical_name("bücher.example").as_deref(),
        Some("xn--bcher-kva.example")
    );
    assert!(matches!(
        canonical_name("plain.example"),
        Some(Cow::Borrowed(_))
    ));
    assert_eq!(canonical_name("xn--a.example"), None);
}

proptest! {
    #[test]
    fn display_round_trips(labels in proptest::collection::vec("[a-z0-9]{1,10}", 2..5), kind in 0u8..3) {
        let base = labels.join(".");
        let text = match kind { 0 => base.clone(), 1 => format!("*.{base}"), _ => format!("**.{base}") };
        let pat = NamePattern::parse(&text, Breadth::Forced).unwrap();
        prop_assert_eq!(pat.to_string(), text.clone());
        prop_assert_eq!(NamePattern::parse(&pat.to_string(), Breadth::Forced).unwrap(), pat);
    }

    #[test]
    fn never_panics(s in ".{0,80}") {
        let _ = NamePattern::parse(&s, Breadth::Strict);
        let _ = canonical_name(&s);
    }
}
