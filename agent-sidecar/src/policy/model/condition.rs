//! Compiled rule conditions: evaluation against an action's attribute
//! values, implication between two conditions (the basis of the
//! "a child can only tighten" checks) and human-readable descriptions.

use std::fmt::Write as _;

use super::{
    attribute::{Attr, REVERSIBILITY, Values},
    names::Ids,
};

/// One end of a numeric range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bound {
    pub(crate) value: f64,
    pub(crate) inclusive: bool,
}

/// A numeric range; `None` ends are unbounded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Range {
    pub(crate) lo: Option<Bound>,
    pub(crate) hi: Option<Bound>,
}

impl Range {
    pub(crate) fn contains(&self, v: f64) -> bool {
        let above = match self.lo {
            None => true,
            Some(b) if b.inclusive => v >= b.value,
            Some(b) => v > b.value,
        };
        let below = match self.hi {
            None => true,
            Some(b) if b.inclusive => v <= b.value,
            Some(b) => v < b.value,
        };
        above && below
    }

    /// Whether no number is in the range.
    pub(crate) fn is_empty(&self) -> bool {
        match (self.lo, self.hi) {
            (Some(l), Some(h)) => {
                l.value > h.value || (l.value == h.value && !(l.inclusive && h.inclusive))
            }
            _ => false,
        }
    }

    /// Whether every number in `self` is in `other`.
    pub(crate) fn within(&self, other: &Range) -> bool {
        let lo_ok = match (self.lo, other.lo) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => {
                a.value > b.value || (a.value == b.value && (b.inclusive || !a.inclusive))
            }
        };
        let hi_ok = match (self.hi, other.hi) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => {
                a.value < b.value || (a.value == b.value && (b.inclusive || !a.inclusive))
            }
        };
        lo_ok && hi_ok
    }
}

/// Formats a number without a trailing `.0`.
pub(crate) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Set membership over interned classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetPred {
    /// At least one of the bits.
    Any(u64),
    /// All of the bits.
    All(u64),
}

impl SetPred {
    pub(crate) fn matches(self, v: u64) -> bool {
        match self {
            SetPred::Any(m) => v & m != 0,
            SetPred::All(m) => v & m == m,
        }
    }

    /// Whether every value matching `self` matches `other`.
    pub(crate) fn implies(self, other: SetPred) -> bool {
        match (self, other) {
            // Intersects A => intersects B iff A is a subset of B.
            (SetPred::Any(a), SetPred::Any(b)) => a & !b == 0,
            // Contains all of A => intersects B iff A and B share a class.
            (SetPred::All(a), SetPred::Any(b)) => a & b != 0,
            // Contains all of A => contains all of B iff B is a subset of A.
            (SetPred::All(a), SetPred::All(b)) => b & !a == 0,
            // Intersects A => contains all of B only if A is one class
            // and B is within it (or B is empty).
            (SetPred::Any(a), SetPred::All(b)) => b == 0 || (a.count_ones() == 1 && b & !a == 0),
        }
    }
}

/// A compiled `when`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Condition {
    pub(crate) tool: Option<u32>,
    pub(crate) action: Option<u32>,
    pub(crate) amount: Option<Range>,
    pub(crate) records: Option<Range>,
    pub(crate) sensitivity: Option<SetPred>,
    pub(crate) regulatory: Option<SetPred>,
    pub(crate) reversibility: Option<SetPred>,
}

impl Condition {
    /// The attributes the condition tests.
    pub(crate) fn attrs(&self) -> u8 {
        let mut m = 0;
        for (present, a) in [
            (self.amount.is_some(), Attr::Amount),
            (self.records.is_some(), Attr::Records),
            (self.sensitivity.is_some(), Attr::Sensitivity),
            (self.regulatory.is_some(), Attr::Regulatory),
            (self.reversibility.is_some(), Attr::Reversibility),
        ] {
            if present {
                m |= a.bit();
            }
        }
        m
    }

    /// Whether the attribute tests hold (the tool and action were selected
    /// by the index). An absent value fails its test.
    #[inline]
    pub(crate) fn matches(&self, v: &Values) -> bool {
        fn range(r: &Option<Range>, v: Option<f64>) -> bool {
            match (r, v) {
                (None, _) => true,
                (Some(r), Some(v)) => r.contains(v),
                (Some(_), None) => false,
            }
        }
        fn set(p: Option<SetPred>, v: Option<u64>) -> bool {
            match (p, v) {
                (None, _) => true,
                (Some(p), Some(v)) => p.matches(v),
                (Some(_), None) => false,
            }
        }
        range(&self.amount, v.amount)
            && range(&self.records, v.records)
            && set(self.sensitivity, v.sensitivity)
            && set(self.regulatory, v.regulatory)
            && set(self.reversibility, v.reversibility)
    }

    /// Whether every action matching `self` matches `other`. Conservative:
    /// `false` when it cannot be shown.
    pub(crate) fn implies(&self, other: &Condition) -> bool {
        let scope = match (other.tool, other.action) {
            (None, _) => true,
            (Some(t), None) => self.tool == Some(t),
            (Some(t), Some(a)) => self.tool == Some(t) && self.action == Some(a),
        };
        fn range(a: &Option<Range>, b: &Option<Range>) -> bool {
            match (a, b) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => a.within(b),
            }
        }
        fn set(a: Option<SetPred>, b: Option<SetPred>) -> bool {
            match (a, b) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => a.implies(b),
            }
        }
        scope
            && range(&self.amount, &other.amount)
            && range(&self.records, &other.records)
            && set(self.sensitivity, other.sensitivity)
            && set(self.regulatory, other.regulatory)
            && set(self.reversibility, other.reversibility)
    }

    /// The attribute tests, in a fixed order.
    fn tests(&self) -> impl Iterator<Item = Test> + '_ {
        [
            self.amount.map(|r| Test::Range(Attr::Amount, r)),
            self.records.map(|r| Test::Range(Attr::Records, r)),
            self.sensitivity.map(|p| Test::Set(Attr::Sensitivity, p)),
            self.regulatory.map(|p| Test::Set(Attr::Regulatory, p)),
            self.reversibility
                .map(|p| Test::Set(Attr::Reversibility, p)),
        ]
        .into_iter()
        .flatten()
    }

    /// `tool erp, action create_payment, amount > 50000 USD, ...`, or
    /// `every action`.
    pub(crate) fn describe(&self, ids: &Ids<'_>) -> String {
        let mut out = String::new();
        if let Some(a) = self.action {
            let _ = write!(out, "action {}", ids.action_name(a));
        } else if let Some(t) = self.tool {
            let _ = write!(out, "tool {}", ids.tool_name(t));
        }
        for t in self.tests() {
            if !out.is_empty() {
                out.push_str(", ");
            }
            t.write(ids, None, &mut out);
        }
        if out.is_empty() {
            out.push_str("every action");
        }
        out
    }

    /// Writes each attribute test with the actual value (`amount > 500 USD
    /// (is 620 USD)`), separated by `, `, into `out`.
    pub(crate) fn write_checks(&self, ids: &Ids<'_>, values: &Values, out: &mut String) {
        for (i, t) in self.tests().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            t.write(ids, Some(values), out);
        }
    }

    /// Whether the condition tests any attribute.
    pub(crate) fn has_tests(&self) -> bool {
        self.tests().next().is_some()
    }

    /// One line per attribute test; with `values`, each says the actual
    /// value and whether the test held.
    pub(crate) fn checks(&self, ids: &Ids<'_>, values: Option<&Values>) -> Vec<Check> {
        self.tests()
            .map(|t| {
                let mut text = String::new();
                let held = t.write(ids, values, &mut text);
                Check { text, held }
            })
            .collect()
    }
}

/// One attribute test of a condition.
#[derive(Clone, Copy)]
enum Test {
    Range(Attr, Range),
    Set(Attr, SetPred),
}

impl Test {
    /// Writes the test (and, with `values`, the actual value) into `out`
    /// without intermediate allocations; returns whether it held.
    fn write(self, ids: &Ids<'_>, values: Option<&Values>, out: &mut String) -> bool {
        match self {
            Test::Range(attr, r) => {
                let unit = if attr == Attr::Amount {
                    ids.vocab.currency.as_ref()
                } else {
                    ""
                };
                let v = values.and_then(|v| {
                    if attr == Attr::Amount {
                        v.amount
                    } else {
                        v.records
                    }
                });
                for (i, (b, strict, loose)) in [(r.lo, ">", ">="), (r.hi, "<", "<=")]
                    .into_iter()
                    .filter(|(b, ..)| b.is_some())
                    .enumerate()
                {
                    let b = b.expect("filtered");
                    if i > 0 {
                        out.push_str(" and ");
                    }
                    let op = if b.inclusive { loose } else { strict };
                    let _ = write!(out, "{} {op} ", attr.name());
                    write_num(out, b.value);
                    if !unit.is_empty() {
                        let _ = write!(out, " {unit}");
                    }
                }
                if values.is_some() {
                    match v {
                        Some(v) => {
                            out.push_str(" (is ");
                            write_num(out, v);
                            if !unit.is_empty() {
                                let _ = write!(out, " {unit}");
                            }
                            out.push(')');
                        }
                        None => out.push_str(" (unknown)"),
                    }
                }
                v.is_some_and(|v| r.contains(v))
            }
            Test::Set(attr, p) => match attr {
                Attr::Sensitivity => write_set(
                    out,
                    attr,
                    p,
                    values.map(|v| v.sensitivity),
                    &ids.vocab.sensitivity,
                ),
                Attr::Regulatory => write_set(
                    out,
                    attr,
                    p,
                    values.map(|v| v.regulatory),
                    &ids.vocab.regulatory,
                ),
                _ => write_set(
                    out,
                    attr,
                    p,
                    values.map(|v| v.reversibility),
                    &REVERSIBILITY,
                ),
            },
        }
    }
}

/// Writes a set test; `value` is `None` without values, `Some(None)` for an
/// unknown value.
fn write_set<S: AsRef<str>>(
    out: &mut String,
    attr: Attr,
    p: SetPred,
    value: Option<Option<u64>>,
    names: &[S],
) -> bool {
    let (op, mask) = match p {
        SetPred::Any(m) => ("any of", m),
        SetPred::All(m) => ("all of", m),
    };
    let _ = write!(out, "{} {op} ", attr.name());
    write_bits(out, mask, names);
    match value {
        None => false,
        Some(None) => {
            out.push_str(" (unknown)");
            false
        }
        Some(Some(v)) => {
            out.push_str(" (is ");
            write_bits(out, v, names);
            out.push(')');
            p.matches(v)
        }
    }
}

/// Writes `[a, b]` for the bits of `mask`.
fn write_bits<S: AsRef<str>>(out: &mut String, mask: u64, names: &[S]) {
    out.push('[');
    let mut first = true;
    for i in 0..64 {
        if mask & (1u64 << i) != 0 {
            if !first {
                out.push_str(", ");
            }
            first = false;
            out.push_str(names.get(i).map_or("?", |n| n.as_ref()));
        }
    }
    out.push(']');
}

/// Writes a number as [`num`] formats it.
fn write_num(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        out.push_str(&num(v));
    }
}

/// One attribute test, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Check {
    pub(crate) text: String,
    pub(crate) held: bool,
}

#[cfg(test)]
mod tests;
