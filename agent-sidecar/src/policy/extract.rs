//! Attribute extraction: from a request (JSON pointer into the body or MCP
//! arguments, query parameter, header, constant) to typed attributes, as
//! an action's compiled sources say ([`Extract`]). Interning them into the
//! values rules test is the model's (`model/interned.rs`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    action::Attributes,
    attribute::Attr,
    interned::interpret,
    tool::{Extract, From},
};

/// The parts of a request attribute sources read.
pub(crate) struct RequestView<'a> {
    pub(crate) body: Option<&'a Value>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: &'a BTreeMap<String, String>,
}

impl RequestView<'_> {
    fn read(&self, from: &From) -> Option<Value> {
        match from {
            From::Body(p) => self.body?.pointer(p).cloned(),
            From::Query(name) => self
                .query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| Value::String(v.clone())),
            From::Header(name) => self
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| Value::String(v.clone())),
            From::Const(v) => Some(v.clone()),
        }
    }
}

/// Extracts every declared attribute; an absent or malformed value stays
/// `None` (the decision then applies `defaults.missing_attribute`, or the
/// declared default).
pub(crate) fn extract_all(sources: &[Option<Extract>; 5], view: &RequestView<'_>) -> Attributes {
    let mut out = Attributes::default();
    for attr in Attr::ALL {
        let Some(src) = &sources[attr as usize] else {
            continue;
        };
        let Some(raw) = view.read(&src.from) else {
            continue;
        };
        let currency = match &src.currency {
            None => None,
            Some(c) => match view.read(&c.from) {
                Some(Value::String(s)) => Some(s.trim().to_ascii_uppercase()),
                // A declared currency that is absent: the amount is unusable.
                _ => continue,
            },
        };
        if let Ok(v) = interpret(attr, &raw, src.count, currency.as_deref()) {
            merge(&mut out, v);
        }
    }
    out
}

fn merge(out: &mut Attributes, v: Attributes) {
    out.amount = out.amount.take().or(v.amount);
    out.records = out.records.or(v.records);
    out.sensitivity = out.sensitivity.take().or(v.sensitivity);
    out.regulatory = out.regulatory.take().or(v.regulatory);
    out.reversibility = out.reversibility.or(v.reversibility);
}

/// Splits `?a=1&b=2` off a path and percent-decodes the parameters.
pub(crate) fn split_query(path: &str) -> (&str, Vec<(String, String)>) {
    let Some((p, q)) = path.split_once('?') else {
        return (path, Vec::new());
    };
    let pairs = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (p, pairs)
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
