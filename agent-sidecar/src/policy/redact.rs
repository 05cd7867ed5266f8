//! Compiling `redact:` declarations: one [`FieldRedaction`] per action,
//! from its tool's `redact`, its own (which wins field by field) and a
//! `keep` for every body pointer its attributes read. Refused: pointers
//! that are not JSON pointers, hashing or dropping a value an attribute
//! reads (the decision and its reason show attribute values), and rules
//! inside a field that is hashed whole.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use super::{
    document::{ActionDecl, AttributeSources, RedactDecl, Source, ToolDecl},
    error::Problem,
    redaction::{BodyRule, FieldRedaction, RedactMethod, pointer_tokens},
    scoped_doc::Doc,
    tool::ToolTable,
};

/// What is kept of each declared action's input: tool -> action ->
/// redaction. Problems are appended.
pub(crate) type Redactions = HashMap<Arc<str>, HashMap<Arc<str>, Arc<FieldRedaction>>>;

/// Compiles the `redact:` of every tool and action of `docs`.
pub(crate) fn compile_all(
    docs: &[Doc<'_>],
    tools: &ToolTable,
    problems: &mut Vec<Problem>,
) -> Redactions {
    let mut out = Redactions::new();
    for doc in docs {
        for (ti, decl) in doc.doc().tools().iter().enumerate() {
            if tools
                .names
                .get(decl.name.as_str())
                .is_none_or(|&id| tools.tools[id as usize].scope != doc.scope)
            {
                continue;
            }
            let tpath = format!("tools[{ti}]");
            let actions = out.entry(decl.name.as_str().into()).or_default();
            for (ai, a) in decl.actions.iter().enumerate() {
                let apath = format!("{tpath}.actions[{ai}]");
                let r = compile(decl, a, doc, &tpath, &apath, problems);
                actions.insert(a.name.as_str().into(), Arc::new(r));
            }
        }
    }
    out
}

/// The redaction of action `a` of tool `tool`; problems are appended.
fn compile(
    tool: &ToolDecl,
    a: &ActionDecl,
    doc: &Doc<'_>,
    tpath: &str,
    apath: &str,
    problems: &mut Vec<Problem>,
) -> FieldRedaction {
    let empty = RedactDecl::default();
    let levels = [
        (
            tool.redact.as_ref().unwrap_or(&empty),
            format!("{tpath}.redact"),
        ),
        (
            a.redact.as_ref().unwrap_or(&empty),
            format!("{apath}.redact"),
        ),
    ];
    let mut body: BTreeMap<&str, (RedactMethod, &str)> = BTreeMap::new();
    let mut query = BTreeMap::new();
    let mut headers = BTreeMap::new();
    for (decl, at) in &levels {
        for (p, m) in &decl.body {
            body.insert(p.as_str(), (*m, at.as_str()));
        }
        for (q, m) in &decl.query {
            query.insert(q.clone(), (*m, at.as_str()));
        }
        for (h, m) in &decl.headers {
            headers.insert(h.trim().to_ascii_lowercase(), (*m, at.as_str()));
        }
    }
    let mut out = FieldRedaction::default();
    for (pointer, (method, at)) in &body {
        let Some(tokens) = pointer_tokens(pointer) else {
            problems.push(Problem::new(
                doc.parsed.at(&format!("{at}.body")),
                format!("`{pointer}` in `redact.body` is not a JSON pointer"),
                "a JSON pointer starts with `/` (e.g. /payment/iban; `*` for every element or member, `~1` for `/` and `~0` for `~` in a key); \"\" is the whole body",
            ));
            continue;
        };
        out.body.push(BodyRule {
            pointer: (*pointer).to_string(),
            tokens,
            method: *method,
            declared: true,
        });
    }
    for (name, src, at) in attribute_sources(tool, a, tpath, apath) {
        if let Some(p) = &src.body {
            let Some(tokens) = pointer_tokens(p) else {
                continue; // reported by the tool compiler
            };
            let path: Vec<&str> = tokens.iter().map(String::as_str).collect();
            let hidden = out.body.iter().find(|r| {
                (r.at(&path) && r.method != RedactMethod::Keep)
                    || (r.method == RedactMethod::Hash && r.covers(&path))
            });
            if let Some(r) = hidden {
                problems.push(Problem::new(
                    doc.parsed.at(&format!("{at}.{name}.body")),
                    format!(
                        "attribute `{name}` reads {p}, which `redact.body` says to {} ({}): attribute values are kept, the decision and its reason show them",
                        method_name(r.method),
                        r.pointer
                    ),
                    "remove that `redact.body` entry, or read the attribute from another field",
                ));
                continue;
            }
            if !out.body.iter().any(|r| r.at(&path)) {
                out.body.push(BodyRule {
                    pointer: p.clone(),
                    tokens,
                    method: RedactMethod::Keep,
                    declared: false,
                });
            }
        }
        for (key, map, what) in [
            (src.query.clone(), &query, "query"),
            (
                src.header.as_ref().map(|h| h.to_ascii_lowercase()),
                &headers,
                "headers",
            ),
        ] {
            let Some(key) = key else { continue };
            if let Some((m, _)) = map.get(&key).filter(|(m, _)| *m != RedactMethod::Keep) {
                problems.push(Problem::new(
                    doc.parsed.at(&format!("{at}.{name}")),
                    format!(
                        "attribute `{name}` reads {what} `{key}`, which `redact.{what}` says to {}: attribute values are kept, the decision and its reason show them",
                        method_name(*m)
                    ),
                    format!("remove `{key}` from `redact.{what}`"),
                ));
            }
        }
    }
    for r in &out.body {
        let path: Vec<&str> = r.tokens.iter().map(String::as_str).collect();
        if let Some(outer) = out.body.iter().find(|o| {
            o.method == RedactMethod::Hash && o.tokens.len() < path.len() && o.covers(&path)
        }) {
            problems.push(Problem::new(
                doc.parsed.at(&format!("{apath}.redact")),
                format!(
                    "`redact.body` names {} inside {}, which is hashed whole",
                    r.pointer, outer.pointer
                ),
                "hash the inner fields one by one, or remove the inner entry",
            ));
        }
    }
    out.query = query.into_iter().map(|(k, (m, _))| (k, m)).collect();
    out.headers = headers.into_iter().map(|(k, (m, _))| (k, m)).collect();
    out
}

fn method_name(m: RedactMethod) -> &'static str {
    match m {
        RedactMethod::Keep => "keep",
        RedactMethod::Hash => "hash",
        RedactMethod::Drop => "drop",
    }
}

/// The source of each attribute of action `a` (its own, else its tool's),
/// and the currency sources of amounts, with where they are declared.
fn attribute_sources<'a>(
    tool: &'a ToolDecl,
    a: &'a ActionDecl,
    tpath: &str,
    apath: &str,
) -> Vec<(&'static str, &'a Source, String)> {
    let mut out = Vec::new();
    let named = |s: &'a AttributeSources| -> [(&'static str, Option<&'a Source>); 5] {
        [
            ("amount", s.amount.as_ref()),
            ("sensitivity", s.sensitivity.as_ref()),
            ("records", s.records.as_ref()),
            ("reversibility", s.reversibility.as_ref()),
            ("regulatory", s.regulatory.as_ref()),
        ]
    };
    for ((name, own), (_, inherited)) in named(&a.attributes)
        .into_iter()
        .zip(named(&tool.attributes))
    {
        let (src, at) = match (own, inherited) {
            (Some(s), _) => (s, format!("{apath}.attributes")),
            (None, Some(s)) => (s, format!("{tpath}.attributes")),
            (None, None) => continue,
        };
        if let Some(c) = &src.currency {
            out.push((name, c.as_ref(), at.clone()));
        }
        out.push((name, src, at));
    }
    out
}

#[cfg(test)]
mod tests;
