//! Decisions: the highest tier any rule, default or baseline demands for an
//! action, the rules that demanded it, the policy version and a reason.
//!
//! The hot path looks up the agent, the overlay and the action in hash
//! maps, then walks only the rules indexed under the action, its tool and
//! "every action" in each applicable document (base, team, roles, agent,
//! overlay): never the whole set.

use std::fmt::Write as _;

use super::{
    action::Action,
    attribute::{Attr, Values, attr_names},
    decision::{DecidingRule, Decision},
    defaults::{Floor, OverlayDefaults},
    index::{ActionId, RuleId, ScopeId, ToolId},
    interned::{describe_invalid, get_value, intern_given, set_value},
    set::{Agent, CompiledPolicySet},
    tier::Tier,
};

/// Why a default applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    UnknownAgent,
    UnknownEnvironment,
    UnknownTool,
    /// The tool is declared but not for this agent.
    ToolNotVisible(ToolId),
    UnknownAction(ToolId),
    Baseline(ActionId),
    /// Attributes missing (mask) and invalid (mask).
    Missing {
        missing: u8,
        invalid: u8,
    },
}

/// What contributed to a decision.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Decider<'a> {
    Rule(RuleId),
    Floor(&'a Floor, Why),
}

/// Observes an evaluation (for `explain`); the decision path uses `()`.
pub(crate) trait Trace {
    /// A default or baseline applied.
    fn floor(&mut self, _floor: &Floor, _why: Why) {}
    /// A rule was tested.
    fn rule(&mut self, _scope: ScopeId, _rule: RuleId, _matched: bool, _values: &Values) {}
}

impl Trace for () {}

struct Acc<'a> {
    tier: Tier,
    deciders: Vec<Decider<'a>>,
}

impl<'a> Acc<'a> {
    #[inline]
    fn add(&mut self, tier: Tier, d: Decider<'a>) {
        if tier > self.tier || self.deciders.is_empty() {
            self.tier = tier;
            self.deciders.clear();
            self.deciders.push(d);
        } else if tier == self.tier {
            self.deciders.push(d);
        }
    }
}

/// The action resolved against the set.
pub(crate) struct Resolved<'a> {
    pub(crate) agent: &'a Agent,
    pub(crate) overlay: Option<&'a (ScopeId, OverlayDefaults)>,
    pub(crate) tool: Option<ToolId>,
    pub(crate) action: Option<ActionId>,
    pub(crate) values: Values,
}

impl CompiledPolicySet {
    /// Decides `action`: the highest tier that any applicable rule, the
    /// action's baseline or a default demands. Unknown agents,
    /// environments, tools and actions get `defaults.unknown` (tier 3
    /// unless configured); declared attributes the action lacks get
    /// `defaults.missing_attribute`.
    pub fn decide(&self, action: &Action) -> Decision {
        self.evaluate(action, &mut ())
    }

    pub(crate) fn evaluate<T: Trace>(&self, action: &Action, trace: &mut T) -> Decision {
        let mut acc = Acc {
            tier: Tier::Autonomous,
            deciders: Vec::new(),
        };
        let r = self.resolve(action, &mut acc, trace);
        for &s in r.agent.scopes.iter().chain(r.overlay.map(|(s, _)| s)) {
            let scope = &self.scopes[s as usize];
            for rid in scope.candidates(r.tool, r.action) {
                let rule = &self.rules[rid as usize];
                let matched = rule.cond.matches(&r.values);
                trace.rule(s, rid, matched, &r.values);
                if matched {
                    acc.add(rule.tier, Decider::Rule(rid));
                }
            }
        }
        self.finish(action, &r, acc)
    }

    /// Finds the agent, overlay, tool and action, applies the defaults and
    /// the baseline, and interns the attribute values.
    fn resolve<'a, T: Trace>(
        &'a self,
        action: &Action,
        acc: &mut Acc<'a>,
        trace: &mut T,
    ) -> Resolved<'a> {
        let mut floor = |acc: &mut Acc<'a>, f: &'a Floor, why: Why| {
            trace.floor(f, why);
            acc.add(f.tier, Decider::Floor(f, why));
        };
        let known_agent = self.agents.get(action.agent.id.as_str());
        let agent = known_agent.unwrap_or(&self.unknown_agent);
        let overlay = self.overlays.get(action.agent.environment.as_str());
        let od = overlay.map(|(_, d)| d);
        let pick = |own: &'a Floor, over: Option<&'a Floor>| match over {
            Some(o) if o.tier > own.tier => o,
            _ => own,
        };
        let unknown = pick(&agent.defaults.unknown, od.and_then(|d| d.unknown.as_ref()));
        if known_agent.is_none() {
            floor(acc, unknown, Why::UnknownAgent);
        }
        if !self
            .environments
            .iter()
            .any(|e| e.as_ref() == action.agent.environment)
        {
            floor(acc, unknown, Why::UnknownEnvironment);
        }
        let tool = action
            .tool
            .as_deref()
            .and_then(|t| self.tool_names.get(t))
            .copied();
        let visible = tool.filter(|&t| agent.scopes.contains(&self.tools[t as usize].scope));
        let act = visible.and_then(|t| {
            let name = action.action.as_deref()?;
            self.tools[t as usize]
                .actions
                .iter()
                .copied()
                .find(|&a| self.actions[a as usize].name.as_ref() == name)
        });
        match (tool, visible, act) {
            (None, _, _) => floor(acc, unknown, Why::UnknownTool),
            (Some(t), None, _) => floor(acc, unknown, Why::ToolNotVisible(t)),
            (Some(_), Some(t), None) => floor(acc, unknown, Why::UnknownAction(t)),
            (_, _, Some(a)) => {
                let info = &self.actions[a as usize];
                let base = pick(&agent.defaults.action, od.and_then(|d| d.action.as_ref()));
                let b = match &info.baseline {
                    Some(b) if b.tier >= base.tier => b,
                    _ => base,
                };
                floor(acc, b, Why::Baseline(a));
            }
        }
        let declared = act.map_or(0, |a| self.actions[a as usize].declared);
        let mut values = Values::default();
        let (mut missing, mut invalid) = (0u8, 0u8);
        for attr in Attr::ALL {
            match intern_given(&action.attributes, attr, &self.vocab) {
                Some(Ok(v)) => set_value(&mut values, attr, Some(v)),
                Some(Err(())) => invalid |= attr.bit(),
                None if declared & attr.bit() != 0 => {
                    match act.and_then(|a| get_value(&self.actions[a as usize].fallback, attr)) {
                        Some(v) => set_value(&mut values, attr, Some(v)),
                        None => missing |= attr.bit(),
                    }
                }
                None => {}
            }
        }
        if missing | invalid != 0 {
            let m = pick(
                &agent.defaults.missing_attribute,
                od.and_then(|d| d.missing_attribute.as_ref()),
            );
            floor(acc, m, Why::Missing { missing, invalid });
        }
        Resolved {
            agent,
            overlay,
            tool: visible,
            action: act,
            values,
        }
    }

    fn finish(&self, action: &Action, r: &Resolved<'_>, acc: Acc<'_>) -> Decision {
        let mut reason = String::with_capacity(256);
        let _ = write!(reason, "{}", acc.tier);
        let mut rules = Vec::with_capacity(acc.deciders.len());
        for (i, d) in acc.deciders.iter().enumerate() {
            reason.push_str(if i == 0 { ": " } else { "; " });
            match *d {
                Decider::Rule(rid) => {
                    let rule = &self.rules[rid as usize];
                    let level = &self.scopes[rule.scope as usize].level;
                    let _ = write!(reason, "rule `{}` ({level})", rule.id);
                    if let Some(desc) = &rule.description {
                        let _ = write!(reason, " {desc}");
                    }
                    if rule.cond.has_tests() {
                        reason.push_str(" [");
                        rule.cond.write_checks(&self.ids(), &r.values, &mut reason);
                        reason.push(']');
                    }
                    rules.push(DecidingRule {
                        id: rule.id.clone(),
                        level: level.clone(),
                        source: rule.source.clone(),
                    });
                }
                Decider::Floor(f, why) => {
                    let _ = write!(
                        reason,
                        "{} ({}): {}",
                        f.id,
                        f.level,
                        self.why_text(action, why)
                    );
                    rules.push(DecidingRule {
                        id: f.id.clone(),
                        level: f.level.clone(),
                        source: f.source.clone(),
                    });
                }
            }
        }
        let quarantine = acc.tier == Tier::Halt
            && acc.deciders.iter().any(|d| match *d {
                Decider::Rule(rid) => self.rules[rid as usize].quarantine,
                Decider::Floor(..) => false,
            });
        Decision {
            tier: acc.tier,
            rules,
            policy_version: self.version.clone(),
            reason,
            quarantine,
        }
    }

    /// Why a default applied, for humans.
    pub(crate) fn why_text(&self, action: &Action, why: Why) -> String {
        let a = &action.agent;
        match why {
            Why::UnknownAgent => format!("agent `{}` is not declared in the policy set", a.id),
            Why::UnknownEnvironment => format!(
                "environment `{}` is not one of [{}]",
                a.environment,
                self.environments
                    .iter()
                    .map(|e| e.as_ref())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Why::UnknownTool => match &action.tool {
                Some(t) => format!("tool `{t}` is not declared"),
                None => match &action.target {
                    Some(t) => format!("no declared tool matches {}", target_text(t)),
                    None => "the action names no tool".into(),
                },
            },
            Why::ToolNotVisible(t) => format!(
                "tool `{}` is not declared for agent `{}` (it belongs to {})",
                self.tools[t as usize].name,
                a.id,
                self.scopes[self.tools[t as usize].scope as usize].level
            ),
            Why::UnknownAction(t) => match (&action.action, &action.target) {
                (Some(name), _) => format!(
                    "tool `{}` has no action `{name}`",
                    self.tools[t as usize].name
                ),
                (None, Some(target)) => format!(
                    "no action of tool `{}` matches {}",
                    self.tools[t as usize].name,
                    target_text(target)
                ),
                (None, None) => format!(
                    "the action of tool `{}` is not named",
                    self.tools[t as usize].name
                ),
            },
            Why::Baseline(x) => format!(
                "baseline of action `{}`",
                self.actions[x as usize].qualified
            ),
            Why::Missing { missing, invalid } => {
                let mut parts = Vec::new();
                if missing != 0 {
                    parts.push(format!(
                        "declared attribute(s) missing from the request: {}",
                        attr_names(missing)
                    ));
                }
                for attr in Attr::ALL.into_iter().filter(|x| invalid & x.bit() != 0) {
                    parts.push(describe_invalid(&action.attributes, attr, &self.vocab));
                }
                parts.join("; ")
            }
        }
    }
}

fn target_text(t: &super::action::ActionTarget) -> String {
    match t {
        super::action::ActionTarget::Http { host, method, path } => {
            format!("{method} {host}{path}")
        }
        super::action::ActionTarget::Mcp { server, tool } => format!("MCP {server}/{tool}"),
    }
}

#[cfg(test)]
mod tests;
