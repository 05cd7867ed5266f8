//! The risk attributes a rule tests ([`Attr`]) and an action's values of
//! them, interned ([`Values`]).

use super::action::Reversibility;

/// The risk attributes, in a fixed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Attr {
    Amount,
    Sensitivity,
    Records,
    Reversibility,
    Regulatory,
}

impl Attr {
    pub(crate) const ALL: [Attr; 5] = [
        Attr::Amount,
        Attr::Sensitivity,
        Attr::Records,
        Attr::Reversibility,
        Attr::Regulatory,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Attr::Amount => "amount",
            Attr::Sensitivity => "sensitivity",
            Attr::Records => "records",
            Attr::Reversibility => "reversibility",
            Attr::Regulatory => "regulatory",
        }
    }

    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Names of the attributes in `mask`.
pub(crate) fn attr_names(mask: u8) -> String {
    Attr::ALL
        .iter()
        .filter(|a| mask & a.bit() != 0)
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An action's attribute values, interned: amounts in the base currency,
/// classes as bit sets over the vocabulary, reversibility as one bit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Values {
    pub(crate) amount: Option<f64>,
    pub(crate) records: Option<f64>,
    pub(crate) sensitivity: Option<u64>,
    pub(crate) regulatory: Option<u64>,
    pub(crate) reversibility: Option<u64>,
}

/// The reversibility vocabulary, as bit names.
pub(crate) const REVERSIBILITY: [&str; 3] = ["reversible", "compensable", "irreversible"];

/// The bit of a reversibility value.
pub(crate) fn reversibility_bit(r: Reversibility) -> u64 {
    1u64 << (r as u8)
}
