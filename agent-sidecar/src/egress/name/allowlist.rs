//! The name allowlist: [`NameRule`]s indexed by a trie of reversed labels
//! (`com` -> `example` -> `api`), so a lookup costs one hash probe per label
//! of the name, whatever the number of rules.
//!
//! Precedence (what [`NameAllowlist::find`] returns): the most specific
//! matching rule, that is an exact rule first, then wildcards from the
//! longest base to the shortest, `*.` before `**.` for the same base; among
//! rules with the same pattern, the first added. Known DoH/DoT endpoints
//! ([`crate::egress::doh`]) are only matched by exact rules.

use std::collections::HashMap;

use super::{NamePattern, NameRule, PatternKind, canonical_name};
use crate::egress::doh::is_doh_endpoint;

/// Rules of one node of the trie, by how they match relative to the node's
/// name, as indices into [`NameAllowlist::rules`].
#[derive(Clone, Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    exact: Vec<usize>,
    one_label: Vec<usize>,
    any_depth: Vec<usize>,
}

/// An agent's name-based egress allowlist.
#[derive(Clone, Debug, Default)]
pub struct NameAllowlist {
    rules: Vec<NameRule>,
    root: Node,
}

impl NameAllowlist {
    /// An empty allowlist: no name resolves.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a rule.
    pub fn push(&mut self, rule: NameRule) {
        let index = self.rules.len();
        let node = node_for(&mut self.root, &rule.pattern);
        match rule.pattern.kind() {
            PatternKind::Exact => node.exact.push(index),
            PatternKind::OneLabel => node.one_label.push(index),
            PatternKind::AnyDepth => node.any_depth.push(index),
        }
        self.rules.push(rule);
    }

    /// The rules in the order they were added.
    pub fn rules(&self) -> &[NameRule] {
        &self.rules
    }

    /// Whether the allowlist has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The most specific rule matching `name` (any case, trailing dot or
    /// not, Unicode or punycode), whatever its ports.
    pub fn find(&self, name: &str) -> Option<&NameRule> {
        self.first_match(name, |_| true)
    }

    /// The most specific rule matching `name` that covers `port` over `proto`
    /// (IANA protocol number).
    pub fn find_port(&self, name: &str, port: u16, proto: u8) -> Option<&NameRule> {
        self.first_match(name, |rule| rule.covers(port, proto))
    }

    /// Every rule matching `name`, most specific first.
    pub fn matches(&self, name: &str) -> Vec<&NameRule> {
        let mut all = Vec::new();
        self.first_match(name, |rule| {
            all.push(rule);
            false
        });
        all
    }

    /// Visits the rules matching `name` from the most specific and returns
    /// the first one `accept` takes.
    fn first_match<'a>(
        &'a self,
        name: &str,
        mut accept: impl FnMut(&'a NameRule) -> bool,
    ) -> Option<&'a NameRule> {
        let name = canonical_name(name)?;
        if name.is_empty() {
            return None;
        }
        let exact_only = is_doh_endpoint(&name);
        let label_count = name.split('.').count();
        // path[d]: the node reached after the d rightmost labels.
        let mut path: Vec<&Node> = Vec::with_capacity(label_count + 1);
        path.push(&self.root);
        let mut node = &self.root;
        for label in name.rsplit('.') {
            match node.children.get(label) {
                Some(child) => {
                    path.push(child);
                    node = child;
                }
                None => break,
            }
        }
        let mut pick = |indices: &[usize]| {
            indices
                .iter()
                .map(|&i| &self.rules[i])
                .find(|rule| accept(rule))
        };
        if path.len() == label_count + 1
            && let Some(rule) = pick(&path[label_count].exact)
        {
            return Some(rule);
        }
        if exact_only {
            return None;
        }
        for depth in (0..path.len().min(label_count)).rev() {
            let node = path[depth];
            if depth + 1 == label_count
                && let Some(rule) = pick(&node.one_label)
            {
                return Some(rule);
            }
            if let Some(rule) = pick(&node.any_depth) {
                return Some(rule);
            }
        }
        None
    }
}

impl FromIterator<NameRule> for NameAllowlist {
    fn from_iter<I: IntoIterator<Item = NameRule>>(iter: I) -> Self {
        let mut list = NameAllowlist::new();
        for rule in iter {
            list.push(rule);
        }
        list
    }
}

/// The trie node of a pattern's base name, created on the way.
fn node_for<'a>(root: &'a mut Node, pattern: &NamePattern) -> &'a mut Node {
    let mut node = root;
    if pattern.base().is_empty() {
        return node;
    }
    for label in pattern.base().rsplit('.') {
        node = node.children.entry(label.into()).or_default();
    }
    node
}

#[cfg(test)]
mod tests;
