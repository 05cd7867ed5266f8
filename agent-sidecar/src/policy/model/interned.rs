//! From a JSON value to a typed attribute ([`interpret`]), and from typed
//! attributes to the interned values rules test ([`Interned`], [`intern`],
//! [`set_value`]).

use serde_json::Value;

use super::{
    action::{Attributes, Money, Reversibility},
    attribute::{Attr, Values, reversibility_bit},
    vocab::Vocab,
};

/// One interned attribute value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Interned {
    Number(f64),
    Bits(u64),
}

/// Sets `attr` in `values`.
pub(crate) fn set_value(values: &mut Values, attr: Attr, v: Option<Interned>) {
    let num = |v: Option<Interned>| match v {
        Some(Interned::Number(n)) => Some(n),
        _ => None,
    };
    let bits = |v: Option<Interned>| match v {
        Some(Interned::Bits(b)) => Some(b),
        _ => None,
    };
    match attr {
        Attr::Amount => values.amount = num(v),
        Attr::Records => values.records = num(v),
        Attr::Sensitivity => values.sensitivity = bits(v),
        Attr::Regulatory => values.regulatory = bits(v),
        Attr::Reversibility => values.reversibility = bits(v),
    }
}

/// The value of `attr` held by `values`, if any.
pub(crate) fn get_value(values: &Values, attr: Attr) -> Option<Interned> {
    match attr {
        Attr::Amount => values.amount.map(Interned::Number),
        Attr::Records => values.records.map(Interned::Number),
        Attr::Sensitivity => values.sensitivity.map(Interned::Bits),
        Attr::Regulatory => values.regulatory.map(Interned::Bits),
        Attr::Reversibility => values.reversibility.map(Interned::Bits),
    }
}

/// Interns the value `attrs` carries for `attr`: `None` if it carries none,
/// `Some(Err(()))` if the value is invalid (unknown class or currency).
#[inline]
pub(crate) fn intern_given(
    attrs: &Attributes,
    attr: Attr,
    vocab: &Vocab,
) -> Option<Result<Interned, ()>> {
    Some(match attr {
        Attr::Amount => amount(attrs.amount.as_ref()?, vocab).map(Interned::Number),
        Attr::Records => Ok(Interned::Number(attrs.records? as f64)),
        Attr::Sensitivity => {
            classes(attrs.sensitivity.as_deref()?, &vocab.sensitivity).map(Interned::Bits)
        }
        Attr::Regulatory => {
            classes(attrs.regulatory.as_deref()?, &vocab.regulatory).map(Interned::Bits)
        }
        Attr::Reversibility => Ok(Interned::Bits(reversibility_bit(attrs.reversibility?))),
    })
}

fn amount(m: &Money, vocab: &Vocab) -> Result<f64, ()> {
    let rate = match &m.currency {
        None => 1.0,
        Some(c) => vocab.rate(c).ok_or(())?,
    };
    // Money moved either way counts: a negative amount must not slip under
    // a threshold.
    let v = m.value.abs() * rate;
    if v.is_finite() { Ok(v) } else { Err(()) }
}

fn classes(items: &[String], names: &[std::sync::Arc<str>]) -> Result<u64, ()> {
    let mut bits = 0u64;
    for item in items {
        let i = names.iter().position(|n| n.as_ref() == item).ok_or(())?;
        bits |= 1 << i;
    }
    Ok(bits)
}

/// Why the value `attrs` carries for `attr` is invalid.
pub(crate) fn describe_invalid(attrs: &Attributes, attr: Attr, vocab: &Vocab) -> String {
    let unknown = |items: &[String], names: &[std::sync::Arc<str>], what: &str| {
        items
            .iter()
            .find(|i| !names.iter().any(|n| n.as_ref() == i.as_str()))
            .map(|i| format!("unknown {what} `{i}`"))
            .unwrap_or_else(|| format!("invalid {what}"))
    };
    match attr {
        Attr::Amount => match attrs.amount.as_ref().and_then(|m| m.currency.as_ref()) {
            Some(c) if vocab.rate(c).is_none() => format!("no exchange rate for currency `{c}`"),
            _ => "amount is not a finite number".into(),
        },
        Attr::Sensitivity => unknown(
            attrs.sensitivity.as_deref().unwrap_or_default(),
            &vocab.sensitivity,
            "sensitivity class",
        ),
        Attr::Regulatory => unknown(
            attrs.regulatory.as_deref().unwrap_or_default(),
            &vocab.regulatory,
            "regulatory scope",
        ),
        Attr::Records | Attr::Reversibility => format!("invalid {}", attr.name()),
    }
}

/// Interns a typed value (constants and defaults at compile time).
pub(crate) fn intern(attr: Attr, a: &Attributes, vocab: &Vocab) -> Result<Interned, String> {
    match intern_given(a, attr, vocab) {
        Some(Ok(v)) => Ok(v),
        Some(Err(())) => Err(describe_invalid(a, attr, vocab)),
        None => Err(format!("no {} value", attr.name())),
    }
}

/// Reads a JSON value as attribute `attr` (into an `Attributes` holding
/// only that attribute). `currency` applies to amounts.
pub(crate) fn interpret(
    attr: Attr,
    v: &Value,
    count: bool,
    currency: Option<&str>,
) -> Result<Attributes, String> {
    let mut out = Attributes::default();
    match attr {
        Attr::Amount => {
            let value = number(v).ok_or_else(|| format!("{v} is not a number"))?;
            out.amount = Some(Money {
                value,
                currency: currency.map(str::to_string),
            });
        }
        Attr::Records => {
            let n = if count {
                v.as_array()
                    .map(|a| a.len() as u64)
                    .ok_or_else(|| format!("{v} is not an array to count"))?
            } else {
                number(v)
                    .filter(|n| *n >= 0.0 && n.fract() == 0.0)
                    .map(|n| n as u64)
                    .ok_or_else(|| format!("{v} is not a whole number of records"))?
            };
            out.records = Some(n);
        }
        Attr::Sensitivity => out.sensitivity = Some(strings(v)?),
        Attr::Regulatory => out.regulatory = Some(strings(v)?),
        Attr::Reversibility => {
            let s = v.as_str().ok_or_else(|| format!("{v} is not a string"))?;
            out.reversibility =
                Some(Reversibility::parse(s.trim()).ok_or_else(|| {
                    format!("`{s}` is not reversible, compensable or irreversible")
                })?);
        }
    }
    Ok(out)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A string (comma-separated values allowed) or an array of strings.
fn strings(v: &Value) -> Result<Vec<String>, String> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    match v {
        Value::String(s) => Ok(split(s)),
        Value::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                out.extend(split(
                    i.as_str().ok_or_else(|| format!("{i} is not a string"))?,
                ));
            }
            Ok(out)
        }
        other => Err(format!("{other} is not a string or a list of strings")),
    }
}
