use std::collections::BTreeMap;

use super::*;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    name: String,
    #[serde(default)]
    on: bool,
}

#[test]
fn reads_a_document() {
    let d: Doc = from_str("name: a\non: true\n").unwrap();
    assert_eq!((d.name.as_str(), d.on), ("a", true));
}

#[test]
fn duplicate_keys_are_refused_where_they_repeat() {
    let e = from_str::<BTreeMap<String, u32>>("a: 1\nb: 2\na: 3\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 1), "{e:?}");
    assert!(e.message.contains("duplicate"), "{e:?}");
    let e = from_str::<Doc>("name: a\nname: b\n").unwrap_err();
    assert_eq!(e.line, 2, "{e:?}");
}

#[test]
fn only_true_and_false_are_booleans() {
    let e = from_str::<Doc>("name: a\non: yes\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 5), "{e:?}");
}

#[test]
fn errors_have_positions_and_no_duplicate_position_text() {
    let e = from_str::<Doc>("name: a\nnmae: b\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 1), "{e:?}");
    assert!(e.message.starts_with("unknown field `nmae`"), "{e:?}");
    assert!(!e.message.contains("line"), "{e:?}");
}

#[test]
fn an_unclosed_bracket_is_reported_where_the_file_ends_and_where_it_opened() {
    let e = from_str::<Doc>("name: [\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 1), "{e:?}");
    assert!(e.message.contains("opened at line 1 column 7"), "{e:?}");
    let e = from_str::<Doc>("name: 'a\n").unwrap_err();
    assert!(e.message.contains("unclosed quote"), "{e:?}");
}

#[test]
fn alias_bombs_are_bounded() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert!(from_str::<serde_json::Value>(&text).is_err());
}

#[test]
fn events_carry_spans() {
    let starts: Vec<(usize, usize)> = events("a:\n  b: 1\n")
        .filter_map(Result::ok)
        .filter(|(ev, _)| matches!(ev, Event::Scalar(..)))
        .map(|(_, span)| (span.start.line(), span.start.col()))
        .collect();
    assert_eq!(starts, [(1, 0), (2, 2), (2, 5)]);
}
