//! The four oversight tiers and `deny`, ordered from least to most
//! restrictive so that "the highest tier any dimension demands" is `max`.

use std::{borrow::Cow, fmt};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// What the sidecar does with an action. Written `1`..`4` or `deny` in
/// policies, decisions and fixtures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Tier 1: forward and audit.
    Autonomous = 1,
    /// Tier 2: forward, notify the owner, allow reversal within a window.
    Supervised = 2,
    /// Tier 3: hold until an approver says yes; deny on SLA timeout.
    Approval = 3,
    /// Tier 4: block, alert the SOC and the owner.
    Halt = 4,
    /// Refused outright by policy, nobody is asked. Ranks above tier 4.
    Deny = 5,
}

impl Tier {
    /// Every value, lowest first.
    pub const ALL: [Tier; 5] = [
        Tier::Autonomous,
        Tier::Supervised,
        Tier::Approval,
        Tier::Halt,
        Tier::Deny,
    ];

    /// The tier number 1..=4, or 5 for deny.
    pub fn rank(self) -> u8 {
        self as u8
    }

    /// `1`..`4` or `deny`: how the tier is written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Autonomous => "1",
            Tier::Supervised => "2",
            Tier::Approval => "3",
            Tier::Halt => "4",
            Tier::Deny => "deny",
        }
    }

    /// The tier's name in the four-tier model.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Autonomous => "autonomous",
            Tier::Supervised => "supervised",
            Tier::Approval => "approval required",
            Tier::Halt => "halt and escalate",
            Tier::Deny => "denied",
        }
    }

    fn from_rank(n: u64) -> Option<Tier> {
        match n {
            1 => Some(Tier::Autonomous),
            2 => Some(Tier::Supervised),
            3 => Some(Tier::Approval),
            4 => Some(Tier::Halt),
            _ => None,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tier::Deny => f.write_str("deny"),
            t => write!(f, "tier {} ({})", t.rank(), t.name()),
        }
    }
}

const EXPECTED: &str = "a tier: 1, 2, 3, 4 or deny";

impl Serialize for Tier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tier::Deny => s.serialize_str("deny"),
            t => s.serialize_u8(t.rank()),
        }
    }
}

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Tier;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Tier, E> {
                Tier::from_rank(n)
                    .ok_or_else(|| E::custom(format!("tier {n} does not exist; write {EXPECTED}")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Tier, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!(
                        "tier {n} does not exist; write {EXPECTED}"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Tier, E> {
                match s {
                    "deny" => Ok(Tier::Deny),
                    _ => match s.parse::<u64>() {
                        Ok(n) => self.visit_u64(n),
                        Err(_) => Err(E::custom(format!("`{s}` is not {EXPECTED}"))),
                    },
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Tier {
    fn schema_name() -> Cow<'static, str> {
        "Tier".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "1 autonomous, 2 supervised, 3 approval required, 4 halt and escalate, or deny (refused outright; ranks above 4).",
            "oneOf": [
                { "type": "integer", "minimum": 1, "maximum": 4 },
                { "const": "deny" }
            ]
        })
    }
}

#[cfg(test)]
mod tests;
