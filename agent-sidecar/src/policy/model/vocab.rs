//! [`Vocab`]: the currency, exchange rates and class names a set's
//! documents and actions are written in.

use std::{collections::HashMap, sync::Arc};

/// Currency, exchange rates and class names of a set.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Vocab {
    pub(crate) currency: Arc<str>,
    /// Upper-case code -> units of `currency`; holds `currency` itself.
    pub(crate) rates: HashMap<String, f64>,
    pub(crate) sensitivity: Vec<Arc<str>>,
    pub(crate) regulatory: Vec<Arc<str>>,
}

impl Vocab {
    /// Units of the base currency per unit of `code`.
    pub(crate) fn rate(&self, code: &str) -> Option<f64> {
        if code.eq_ignore_ascii_case(&self.currency) {
            return Some(1.0);
        }
        self.rates.get(&code.to_ascii_uppercase()).copied()
    }
}
