//! The agent's DNS budget: how many queries it may have forwarded upstream,
//! and how many distinct names they may carry, per minute.
//!
//! A wildcard rule (`*.example.com`) lets the agent choose a label of up to
//! 63 bytes in every query that leaves the sidecar; without a bound, unique
//! labels are a fast channel to whoever runs the zone's authoritative
//! server. Only queries that would leave the sidecar count: answers from the
//! cache and the static hosts are free. A spent budget refuses the query
//! locally (the name never leaves), counts it and logs one aggregated
//! warning per window.

use std::{
    collections::HashSet,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The budget's window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Limits per [`WINDOW`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetLimits {
    /// Queries forwarded upstream (default 600: ten a second on average).
    pub queries: u32,
    /// Distinct names among them (default 60).
    pub names: u32,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        BudgetLimits {
            queries: 600,
            names: 60,
        }
    }
}

/// Which limit a refused query hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spent {
    /// Too many forwarded queries.
    Queries,
    /// Too many distinct names.
    Names,
}

impl Spent {
    /// The label of the metric and log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Spent::Queries => "queries",
            Spent::Names => "names",
        }
    }
}

/// One agent's budget (fixed windows of [`WINDOW`]).
#[derive(Debug)]
pub struct Budget {
    limits: BudgetLimits,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    queries: u32,
    names: HashSet<String>,
    warned: bool,
}

/// What [`Budget::charge`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charge {
    /// Within the budget: forward.
    Ok,
    /// Refused; `first` is true for the first refusal of the window (the
    /// one to log at WARN; later ones are counted, not logged).
    Refused {
        /// The limit that was hit.
        spent: Spent,
        /// Whether this is the first refusal of the window.
        first: bool,
    },
}

impl Budget {
    /// A budget with `limits`.
    pub fn new(limits: BudgetLimits) -> Self {
        Budget {
            limits,
            window: Mutex::new(Window {
                start: Instant::now(),
                queries: 0,
                names: HashSet::new(),
                warned: false,
            }),
        }
    }

    /// The limits.
    pub fn limits(&self) -> BudgetLimits {
        self.limits
    }

    /// Charges one query for `name` (canonical form) at `now`. The memory
    /// held is at most `limits.names` names.
    pub fn charge(&self, name: &str, now: Instant) -> Charge {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(w.start) >= WINDOW {
            w.start = now;
            w.queries = 0;
            w.names.clear();
            w.warned = false;
        }
        let spent = if w.queries >= self.limits.queries {
            Some(Spent::Queries)
        } else if !w.names.contains(name) && w.names.len() >= self.limits.names as usize {
            Some(Spent::Names)
        } else {
            None
        };
        match spent {
            None => {
                w.queries += 1;
                if !w.names.contains(name) {
                    w.names.insert(name.to_string());
                }
                Charge::Ok
            }
            Some(spent) => {
                let first = !w.warned;
                w.warned = true;
                Charge::Refused { spent, first }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_names_and_queries_are_bounded_per_window() {
        let b = Budget::new(BudgetLimits {
            queries: 5,
            names: 2,
        });
        let t = Instant::now();
        assert_eq!(b.charge("a.x", t), Charge::Ok);
        assert_eq!(b.charge("b.x", t), Charge::Ok);
        assert_eq!(
            b.charge("c.x", t),
            Charge::Refused {
                spent: Spent::Names,
                first: true
            }
        );
        // Names already seen still resolve, until the query count is spent.
        assert_eq!(b.charge("a.x", t), Charge::Ok);
        assert_eq!(b.charge("b.x", t), Charge::Ok);
        assert_eq!(b.charge("a.x", t), Charge::Ok);
        assert_eq!(
            b.charge("a.x", t),
            Charge::Refused {
                spent: Spent::Queries,
                first: false
            }
        );
        // A new window starts afresh.
        assert_eq!(b.charge("c.x", t + WINDOW), Charge::Ok);
    }
}
