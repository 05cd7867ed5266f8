//! A call's input as everything but the forwarded call sees it: the body
//! (MCP: arguments) with only what the policy keeps (declared `keep`
//! fields and attribute sources as sent, `hash` fields as keyed hashes),
//! the query and the headers with their named parameters hashed or
//! dropped, and the list of what was redacted.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};

use super::RedactionKey;
use crate::policy::gateway::{FieldRedaction, RedactMethod};

/// At most this many redactions are listed; more are summed up by one
/// last entry whose path is `*`.
pub const MAX_LISTED: usize = 64;

/// What was redacted of one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Redacted {
    /// Where: a JSON pointer into the body or MCP arguments (`/iban`,
    /// array indices as `*`: `/lines/*/card`; `""` for the whole body),
    /// `query:NAME` or `header:NAME`.
    pub path: String,
    /// `hash` or `drop`.
    pub method: RedactMethod,
}

/// A call's input as kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InputView {
    /// The body or MCP arguments as kept (`null` when there was none or
    /// nothing is kept).
    pub body: Value,
    /// What was redacted of it.
    pub redactions: Vec<Redacted>,
    /// The content hash of the policy version that said so.
    pub policy_version: String,
}

/// Collects redactions, generalising array indices and listing each path
/// once.
struct Listed<'a> {
    out: &'a mut Vec<Redacted>,
    seen: HashSet<String>,
    more: bool,
}

impl Listed<'_> {
    fn add(&mut self, path: String, method: RedactMethod) {
        if !self.seen.insert(path.clone()) {
            return;
        }
        if self.out.len() >= MAX_LISTED {
            if !self.more {
                self.more = true;
                self.out.push(Redacted {
                    path: "*".into(),
                    method: RedactMethod::Drop,
                });
            }
            return;
        }
        self.out.push(Redacted { path, method });
    }
}

/// The view of a body: `json` when it parsed as JSON, else the raw
/// `bytes` (kept only when the policy keeps the whole body, `"": keep`,
/// as escaped text). Without `rules` (an undeclared action) nothing is
/// kept; without `key`, fields to hash are dropped instead.
pub fn body_view(
    rules: Option<&FieldRedaction>,
    key: Option<&RedactionKey>,
    json: Option<&Value>,
    bytes: &[u8],
    policy_version: &str,
) -> InputView {
    let empty = FieldRedaction::default();
    let rules = rules.unwrap_or(&empty);
    let mut redactions = Vec::new();
    let mut listed = Listed {
        out: &mut redactions,
        seen: HashSet::new(),
        more: false,
    };
    let body = match json {
        Some(v) => {
            let mut path = Vec::new();
            Walk { rules, key }
                .value(v, &mut path, &mut listed)
                .unwrap_or(Value::Null)
        }
        None if bytes.is_empty() => Value::Null,
        None if rules.method_at(&[]) == Some(RedactMethod::Keep) => serde_json::json!({
            "text": bytes.escape_ascii().to_string(),
            "bytes": bytes.len(),
        }),
        None => {
            listed.add(String::new(), RedactMethod::Drop);
            Value::Null
        }
    };
    InputView {
        body,
        redactions,
        policy_version: policy_version.to_string(),
    }
}

struct Walk<'a> {
    rules: &'a FieldRedaction,
    key: Option<&'a RedactionKey>,
}

impl Walk<'_> {
    /// `v` at `path` as kept, or `None` when it is dropped whole.
    fn value(&self, v: &Value, path: &mut Vec<String>, listed: &mut Listed<'_>) -> Option<Value> {
        let here: Vec<&str> = path.iter().map(String::as_str).collect();
        let method = self.rules.method_at(&here).unwrap_or(RedactMethod::Drop);
        let below = self.rules.rules_below(&here);
        match method {
            RedactMethod::Hash => {
                let Some(k) = self.key else {
                    // No key, no hash: nothing of the value is kept.
                    listed.add(pointer(path), RedactMethod::Drop);
                    return None;
                };
                listed.add(pointer(path), RedactMethod::Hash);
                return Some(Value::String(k.hash_value(v)));
            }
            RedactMethod::Keep if !below => return Some(v.clone()),
            RedactMethod::Drop if !below || !(v.is_object() || v.is_array()) => {
                listed.add(pointer(path), RedactMethod::Drop);
                return None;
            }
            _ => {}
        }
        match v {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, child) in map {
                    path.push(k.clone());
                    if let Some(c) = self.value(child, path, listed) {
                        out.insert(k.clone(), c);
                    }
                    path.pop();
                }
                (method == RedactMethod::Keep || !out.is_empty()).then_some(Value::Object(out))
            }
            Value::Array(items) => {
                let mut out = Vec::new();
                for (i, child) in items.iter().enumerate() {
                    path.push(i.to_string());
                    if let Some(c) = self.value(child, path, listed) {
                        out.push(c);
                    }
                    path.pop();
                }
                (method == RedactMethod::Keep || !out.is_empty()).then_some(Value::Array(out))
            }
            // A kept scalar with rules below it (only `*` rules can be).
            other => Some(other.clone()),
        }
    }
}

/// The JSON pointer of `path`, array indices written `*`.
fn pointer(path: &[String]) -> String {
    let mut out = String::new();
    for t in path {
        out.push('/');
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            out.push('*');
        } else {
            out.push_str(&t.replace('~', "~0").replace('/', "~1"));
        }
    }
    out
}

/// The query string as shown: unchanged unless the policy names some of
/// its parameters; then rebuilt with those hashed or dropped (recorded in
/// `out` as `query:NAME`).
pub fn query_view(
    rules: Option<&FieldRedaction>,
    key: Option<&RedactionKey>,
    query: Option<&str>,
    out: &mut Vec<Redacted>,
) -> Option<String> {
    let query = query?;
    let Some(rules) = rules.filter(|r| !r.query.is_empty()) else {
        return Some(query.to_string());
    };
    let mut shown = form_urlencoded::Serializer::new(String::new());
    let mut touched = false;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match (rules.query.get(name.as_ref()), key) {
            (None | Some(RedactMethod::Keep), _) => {
                shown.append_pair(&name, &value);
            }
            (Some(RedactMethod::Hash), Some(k)) => {
                touched = true;
                note(out, format!("query:{name}"), RedactMethod::Hash);
                shown.append_pair(&name, &k.hash_bytes(value.as_bytes()));
            }
            (Some(_), _) => {
                touched = true;
                note(out, format!("query:{name}"), RedactMethod::Drop);
            }
        }
    }
    Some(if touched {
        shown.finish()
    } else {
        query.to_string()
    })
}

/// One header value as shown (`value` already escaped for display): kept,
/// hashed (of its raw bytes) or dropped (`None`) as the policy names
/// header `name` (lower case); recorded in `out` as `header:NAME`.
pub fn header_view(
    rules: Option<&FieldRedaction>,
    key: Option<&RedactionKey>,
    name: &str,
    raw: &[u8],
    shown: String,
    out: &mut Vec<Redacted>,
) -> Option<String> {
    match (rules.and_then(|r| r.headers.get(name)), key) {
        (None | Some(RedactMethod::Keep), _) => Some(shown),
        (Some(RedactMethod::Hash), Some(k)) => {
            note(out, format!("header:{name}"), RedactMethod::Hash);
            Some(k.hash_bytes(raw))
        }
        (Some(_), _) => {
            note(out, format!("header:{name}"), RedactMethod::Drop);
            None
        }
    }
}

fn note(out: &mut Vec<Redacted>, path: String, method: RedactMethod) {
    if !out.iter().any(|r| r.path == path) && out.len() < MAX_LISTED {
        out.push(Redacted { path, method });
    }
}

#[cfg(test)]
mod tests;
