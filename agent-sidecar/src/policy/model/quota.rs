//! The `quotas:` declaration of a policy document.

use std::{fmt, time::Duration};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::tier::Tier;

/// Whose calls a limit adds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuotaScope {
    /// Each agent has its own counter.
    Agent,
    /// The agents of a team share one counter.
    Team,
    /// Every agent of the organisation shares one counter.
    Org,
}

impl QuotaScope {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaScope::Agent => "agent",
            QuotaScope::Team => "team",
            QuotaScope::Org => "org",
        }
    }
}

/// What a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Every call (one per call).
    Calls,
    /// Calls decided at tier 2 or above.
    Tier2Actions,
    /// The action's declared `amount` attribute, in cents of the base
    /// currency. A call without a valid amount is refused (fail closed).
    Amount,
    /// Request bytes sent upstream.
    BytesOut,
}

/// What a limit does when its shared counter cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Unavailable {
    /// Refuse the call at the limit's `on_reach` tier (fail closed).
    Deny,
    /// Let the call through uncounted; counted and logged as a fail-open.
    Allow,
}

/// A fixed window: `1m`, `1h`, `1d`, `30s`... Windows are aligned to the
/// Unix epoch (a `1d` window is a UTC day), the same on every sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(into = "String")]
#[schemars(with = "String")]
pub struct Window(pub u64);

impl Window {
    /// The window's length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0)
    }

    /// Parses `N` followed by `s`, `m`, `h` or `d`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (n, unit) = s.split_at(s.len().checked_sub(1)?);
        let n: u64 = n.parse().ok()?;
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        let secs = n.checked_mul(mult)?;
        (secs > 0).then_some(Window(secs))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

impl From<Window> for String {
    fn from(w: Window) -> String {
        w.to_string()
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Window::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "window `{s}` is not a duration: write a positive number and s, m, h or d (`1d`)"
            ))
        })
    }
}

fn default_on_reach() -> Tier {
    Tier::Approval
}

/// One limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaDecl {
    /// Unique name (`refunds-per-day`).
    pub name: String,
    /// Whose calls add up.
    pub scope: QuotaScope,
    /// The fixed window.
    pub window: Window,
    /// What is counted.
    pub measure: Measure,
    /// The most the window may hold (cents for `amount`).
    pub limit: u64,
    /// Only these tools count (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Only these actions count (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// The tier a call that would pass the limit gets: 3 (approval) or 4.
    #[serde(default = "default_on_reach")]
    pub on_reach: Tier,
    /// When the shared counter is unreachable. Default: `deny` for
    /// `amount` limits (fail closed for money), `allow` for the others.
    #[serde(default)]
    pub on_unavailable: Option<Unavailable>,
}

impl QuotaDecl {
    /// Whether a call of `action`, decided `tier`, is counted against this
    /// limit (its tools and actions, and tier 2+ for `tier2_actions`).
    pub fn applies(&self, action: &super::action::Action, tier: Tier) -> bool {
        let listed = |list: &[String], v: &Option<String>| {
            list.is_empty() || v.as_ref().is_some_and(|v| list.iter().any(|x| x == v))
        };
        listed(&self.tools, &action.tool)
            && listed(&self.actions, &action.action)
            && (self.measure != Measure::Tier2Actions || tier >= Tier::Supervised)
    }

    /// `on_unavailable` with its default.
    pub fn unavailable(&self) -> Unavailable {
        self.on_unavailable.unwrap_or(match self.measure {
            Measure::Amount => Unavailable::Deny,
            _ => Unavailable::Allow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse() {
        assert_eq!(Window::parse("1d"), Some(Window(86_400)));
        assert_eq!(Window::parse("15m"), Some(Window(900)));
        assert_eq!(Window::parse("0h"), None);
        assert_eq!(Window::parse("-1h"), None);
        assert_eq!(Window::parse("h"), None);
        assert_eq!(Window::parse("99999999999999999d"), None);
    }

    #[test]
    fn money_fails_closed_by_default() {
        let d: QuotaDecl = serde_json::from_value(serde_json::json!({
            "name": "refunds", "scope": "org", "window": "1d",
            "measure": "amount", "limit": 100000
        }))
        .unwrap();
        assert_eq!(d.unavailable(), Unavailable::Deny);
        assert_eq!(d.on_reach, Tier::Approval);
    }
}
