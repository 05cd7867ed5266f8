use std::collections::BTreeMap;

use super::{
    graph::{Tree, cycles},
    lex::{Tok, lex},
    parse::parse,
    report, subsystem_report,
};

fn tree(files: &[(&str, &str)]) -> Tree {
    let files: BTreeMap<String, String> = files
        .iter()
        .map(|(f, s)| (f.to_string(), s.to_string()))
        .collect();
    Tree::load(&["lib.rs"], &|f: &str| files.get(f).cloned()).expect("tree")
}

fn id(tree: &Tree, file: &str) -> usize {
    tree.modules
        .iter()
        .position(|m| m.file == file)
        .unwrap_or_else(|| panic!("no module {file}"))
}

fn edges(tree: &Tree) -> Vec<(String, String)> {
    tree.graph()
        .keys()
        .map(|&(a, b)| (tree.modules[a].file.clone(), tree.modules[b].file.clone()))
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn comments_strings_and_lifetimes_hide_no_path_and_shift_no_line() {
    let src = "// crate::hidden::B\n/* crate::hidden::C\n */ let s = \"crate::hidden::D\\\"\";\nlet r = r#\"crate::hidden \"# ;\nfn f<'a>(x: &'a str) -> char { 'x' }\ncrate::e::F";
    let idents: Vec<(String, usize)> = lex(src)
        .into_iter()
        .filter_map(|t| match t.tok {
            Tok::Ident(w) => Some((w, t.line)),
            _ => None,
        })
        .collect();
    assert!(!idents.iter().any(|(w, _)| w == "hidden"), "{idents:?}");
    assert_eq!(idents.last(), Some(&("F".to_string(), 6)));
    let parsed = parse(src);
    assert_eq!(parsed.paths.len(), 1);
    assert_eq!(parsed.paths[0].path, ["crate", "e", "F"]);
}

#[test]
fn use_trees_give_one_leaf_per_name_with_its_binding() {
    let parsed = parse(
        "use crate::a::{self, b::{C, D as E}, f::*};\nuse super::g as _;\nuse std::fmt;\nfn x() -> impl Sized + use<> {}",
    );
    let leaves: Vec<(Vec<&str>, Option<&str>, bool)> = parsed
        .uses
        .iter()
        .map(|u| {
            (
                u.path.iter().map(String::as_str).collect(),
                u.binding.as_deref(),
                u.glob,
            )
        })
        .collect();
    assert_eq!(
        leaves,
        [
            (vec!["crate", "a"], Some("a"), false),
            (vec!["crate", "a", "b", "C"], Some("C"), false),
            (vec!["crate", "a", "b", "D"], Some("E"), false),
            (vec!["crate", "a", "f"], None, true),
            (vec!["super", "g"], None, false),
            (vec!["std", "fmt"], Some("fmt"), false),
        ]
    );
}

#[test]
fn test_code_is_left_out() {
    let parsed = parse(
        "mod real;\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod inline { use super::x::Y; }\n#[cfg(test)]\nuse crate::z::W;\n#[cfg(test)]\nfn helper<A, B>() { crate::q::r() }\nstruct S {\n    #[cfg(test)]\n    f: crate::t::T,\n    g: u8,\n}\nuse crate::kept::K;",
    );
    assert_eq!(
        parsed
            .mods
            .iter()
            .map(|m| (m.name.as_str(), m.test_only))
            .collect::<Vec<_>>(),
        [("real", false), ("tests", true)]
    );
    assert_eq!(parsed.uses.len(), 1);
    assert_eq!(parsed.uses[0].path, ["crate", "kept", "K"]);
    assert!(parsed.paths.is_empty(), "{:?}", parsed.paths);
}

#[test]
fn re_exports_lead_to_the_defining_module() {
    let t = tree(&[
        ("lib.rs", "pub mod p;\n"),
        (
            "p.rs",
            "mod model;\nmod user;\nuse model::{set};\npub use set::Set;\n",
        ),
        ("p/model.rs", "pub mod set;\n"),
        ("p/model/set.rs", "pub struct Set;\n"),
        (
            "p/user.rs",
            "use super::Set;\nfn f() { super::set::Set::new(); }\n",
        ),
    ]);
    let user = id(&t, "p/user.rs");
    let set = id(&t, "p/model/set.rs");
    assert_eq!(t.resolve(user, &["super".into(), "Set".into()]), Some(set));
    assert_eq!(
        t.resolve(user, &["std".into(), "fmt".into()]),
        None,
        "outside the crate"
    );
    let e = edges(&t);
    assert!(e.contains(&pair("p/user.rs", "p/model/set.rs")));
    assert!(!e.contains(&pair("p/user.rs", "p.rs")), "{e:?}");
}

#[test]
fn parent_and_child_importing_each_other_is_a_cycle() {
    let t = tree(&[
        ("lib.rs", "pub mod p;\npub mod q;\n"),
        (
            "p.rs",
            "mod a;\npub struct Shared;\npub fn run() { a::go() }\n",
        ),
        ("p/a.rs", "use super::Shared;\npub fn go() {}\n"),
        ("q.rs", "use crate::p::Shared;\n"),
    ]);
    let g = t.graph();
    let found = cycles(t.modules.len(), &g, |a, b| {
        t.modules[a].subsystem() == t.modules[b].subsystem()
    });
    assert_eq!(found, vec![vec![id(&t, "p.rs"), id(&t, "p/a.rs")]]);
    let r = report(&t, &g);
    assert_eq!(r.cycles, 1);
    assert!(
        r.text
            .contains("agent-sidecar/src/p/a.rs:1: use super::Shared;")
    );
    assert!(
        r.text
            .contains("agent-sidecar/src/p.rs:3: pub fn run() { a::go() }")
    );
}

#[test]
fn siblings_importing_each_other_through_a_facade_are_a_cycle() {
    let t = tree(&[
        ("lib.rs", "pub mod p;\n"),
        ("p.rs", "mod a;\nmod b;\npub use a::A;\npub use b::B;\n"),
        ("p/a.rs", "pub struct A(super::B);\n"),
        ("p/b.rs", "pub fn f(_: &crate::p::A) {}\npub struct B;\n"),
    ]);
    let r = report(&t, &t.graph());
    assert_eq!(r.cycles, 1, "{}", r.text);
    assert!(r.text.contains("p::a -> p::b -> p::a"), "{}", r.text);
}

#[test]
fn downward_imports_pass() {
    let t = tree(&[
        ("lib.rs", "pub mod p;\npub mod q;\n"),
        ("p.rs", "mod a;\nmod b;\npub use a::A;\n"),
        (
            "p/a.rs",
            "use super::b::B;\npub struct A(B, crate::q::Q);\n",
        ),
        ("p/b.rs", "pub struct B;\n"),
        ("q.rs", "pub struct Q;\n"),
    ]);
    let g = t.graph();
    assert_eq!(report(&t, &g).cycles, 0);
    assert_eq!(subsystem_report(&t, &g).cycles, 0);
}

#[test]
fn subsystems_importing_each_other_are_a_cycle_whatever_the_modules() {
    let t = tree(&[
        ("lib.rs", "pub mod p;\npub mod q;\n"),
        ("p.rs", "mod a;\nmod b;\n"),
        ("p/a.rs", "pub struct A(crate::q::Q);\n"),
        ("p/b.rs", "pub struct B;\n"),
        ("q.rs", "pub struct Q;\npub fn f(_: crate::p::b::B) {}\n"),
    ]);
    let g = t.graph();
    assert_eq!(report(&t, &g).cycles, 0, "no cycle among modules");
    let r = subsystem_report(&t, &g);
    assert_eq!(r.cycles, 1, "{}", r.text);
    assert!(r.text.contains("p -> q -> p"), "{}", r.text);
    assert!(
        r.text.contains("agent-sidecar/src/q.rs:2: pub fn f"),
        "{}",
        r.text
    );
}
