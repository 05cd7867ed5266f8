//! One action's input redaction as compiled (by `policy/gateway.rs`) from
//! the `redact:` of its tool and its own, plus its attributes' sources:
//! per body field (JSON pointer), query parameter and header, what the
//! audit record, the approvals journal, the webhooks and the logs keep.
//! Applying it is [`crate::redaction`]'s.

use std::collections::HashMap;

pub use super::document::RedactMethod;

/// One body rule: a JSON pointer (as tokens, `*` matching any member or
/// element) and its method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyRule {
    /// The pointer as written (`/lines/*/card`).
    pub pointer: String,
    /// Its unescaped reference tokens (`["lines", "*", "card"]`).
    pub tokens: Vec<String>,
    /// What is done to the value there.
    pub method: RedactMethod,
    /// Declared under `redact:` (else: an attribute's source, kept).
    pub declared: bool,
}

impl BodyRule {
    /// Whether this rule's pointer is `path` (tokens of a concrete place
    /// in the body; `*` matches any token).
    pub fn at(&self, path: &[&str]) -> bool {
        self.tokens.len() == path.len() && self.covers(path)
    }

    /// Whether this rule's pointer is `path` or one of its ancestors.
    pub fn covers(&self, path: &[&str]) -> bool {
        self.tokens.len() <= path.len()
            && self
                .tokens
                .iter()
                .zip(path)
                .all(|(t, p)| t == "*" || t == p)
    }

    /// Whether this rule's pointer lies strictly below `path`.
    pub fn below(&self, path: &[&str]) -> bool {
        self.tokens.len() > path.len()
            && self
                .tokens
                .iter()
                .zip(path)
                .all(|(t, p)| t == "*" || t == p)
    }
}

/// What is kept of one action's input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldRedaction {
    /// Body rules: the declared ones and a `keep` for every attribute's
    /// body pointer.
    pub body: Vec<BodyRule>,
    /// Query parameters named by `redact.query`.
    pub query: HashMap<String, RedactMethod>,
    /// Headers (lower case) named by `redact.headers`.
    pub headers: HashMap<String, RedactMethod>,
}

impl FieldRedaction {
    /// The method of the most specific rule covering `path`, if any: the
    /// deepest, and of two as deep the one with fewer `*`.
    pub fn method_at(&self, path: &[&str]) -> Option<RedactMethod> {
        self.body
            .iter()
            .filter(|r| r.covers(path))
            .max_by_key(|r| {
                let literal = r.tokens.iter().filter(|t| *t != "*").count();
                (r.tokens.len(), literal)
            })
            .map(|r| r.method)
    }

    /// Whether some rule lies below `path`.
    pub fn rules_below(&self, path: &[&str]) -> bool {
        self.body.iter().any(|r| r.below(path))
    }
}

/// The reference tokens of JSON pointer `p` (RFC 6901: `~1` is `/`, `~0`
/// is `~`); `None` unless it is empty or starts with `/`.
pub(crate) fn pointer_tokens(p: &str) -> Option<Vec<String>> {
    if p.is_empty() {
        return Some(Vec::new());
    }
    let rest = p.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}
