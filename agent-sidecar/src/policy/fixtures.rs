//! Scenario fixtures for `policy test`: YAML files of actions and the tier
//! (and optionally the deciding rules) expected for each. A CI pipeline
//! runs them on every policy change; any mismatch fails with a diff-like
//! report.
//!
//! ```yaml
//! scenarios:
//!   - name: large vendor payment needs approval
//!     action:
//!       agent: procurement-agent
//!       environment: prod
//!       http: { host: erp.acme.internal, method: POST, path: /v1/payments,
//!               body: { amount: 62000, currency: USD } }
//!     expect:
//!       tier: 3
//!       rules: [finance.vendor-payment-approval]
//! ```

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    action::ActionInput,
    decision::Decision,
    error::Problem,
    location::{Location, Positions},
    set::CompiledPolicySet,
    tier::Tier,
};

/// A fixture file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixtureFile {
    /// The scenarios, run in order.
    pub scenarios: Vec<Scenario>,
}

/// One scenario: an action and what the policy must decide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario shows; printed on failure.
    pub name: String,
    /// The action.
    pub action: ActionInput,
    /// The expected decision.
    pub expect: Expect,
}

/// The expected decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The tier.
    pub tier: Tier,
    /// The ids of the deciding rules, in any order (not checked if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
    /// Text the reason must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_contains: Option<String>,
}

/// A scenario whose decision differs from the expectation.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Where the scenario is.
    pub location: Location,
    /// Its name.
    pub name: String,
    /// What was expected.
    pub expected: Expect,
    /// What the policy decided.
    pub actual: Decision,
}

/// The outcome of running fixtures.
#[derive(Debug, Default)]
pub struct FixtureReport {
    /// Scenarios that passed.
    pub passed: usize,
    /// Scenarios that did not.
    pub failures: Vec<Failure>,
    /// Fixture files or scenarios that could not be run.
    pub errors: Vec<Problem>,
}

impl FixtureReport {
    /// Whether every scenario ran and passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.errors.is_empty() && self.passed > 0
    }
}

/// The fixture files at `path`: the file itself, or every `*.yaml`/`*.yml`
/// below the directory, sorted.
pub fn fixture_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs every scenario of the fixture files at `path` against `set`.
pub fn run_fixtures(set: &CompiledPolicySet, path: &Path) -> FixtureReport {
    let mut report = FixtureReport::default();
    let files = match fixture_files(path) {
        Ok(f) => f,
        Err(e) => {
            report.errors.push(Problem::new(
                Location::file(path.display().to_string().into()),
                format!("cannot read fixtures: {e}"),
                "pass a fixture file or a directory of them",
            ));
            return report;
        }
    };
    for file in files {
        run_file(set, &file, &mut report);
    }
    if report.passed == 0 && report.failures.is_empty() && report.errors.is_empty() {
        report.errors.push(Problem::new(
            Location::file(path.display().to_string().into()),
            "no scenario found",
            "add fixture files with `scenarios:` (see docs/policy.md, \"Testing policies\")",
        ));
    }
    report
}

fn run_file(set: &CompiledPolicySet, file: &Path, report: &mut FixtureReport) {
    let name: Arc<str> = file.display().to_string().into();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(Problem::new(
                Location::file(name),
                format!("cannot read: {e}"),
                "check the path and permissions",
            ));
            return;
        }
    };
    let parsed: FixtureFile = match crate::yaml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            let loc = Location {
                file: name.clone(),
                line: e.line,
                column: e.column,
            };
            let msg = e.message;
            report.errors.push(Problem::new(
                loc,
                format!("invalid fixture file: {msg}"),
                "a fixture file has `scenarios:`, each with `name`, `action` and `expect` (see docs/policy.md)",
            ));
            return;
        }
    };
    let positions = Positions::index(name, &text);
    for (i, s) in parsed.scenarios.into_iter().enumerate() {
        let location = positions.at(&format!("scenarios[{i}]"));
        let action = match set.action_from_input(&s.action) {
            Ok(a) => a,
            Err(e) => {
                report.errors.push(Problem::new(
                    positions.at(&format!("scenarios[{i}].action")),
                    e.to_string(),
                    "fix the scenario's action",
                ));
                continue;
            }
        };
        let actual = set.decide(&action);
        if matches(&s.expect, &actual) {
            report.passed += 1;
        } else {
            report.failures.push(Failure {
                location,
                name: s.name,
                expected: s.expect,
                actual,
            });
        }
    }
}

fn matches(expect: &Expect, actual: &Decision) -> bool {
    let rules_ok = expect.rules.as_ref().is_none_or(|want| {
        let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
        let mut got: Vec<&str> = actual.rules.iter().map(|r| r.id.as_ref()).collect();
        want.sort_unstable();
        got.sort_unstable();
        want == got
    });
    let reason_ok = expect
        .reason_contains
        .as_ref()
        .is_none_or(|r| actual.reason.contains(r.as_str()));
    expect.tier == actual.tier && rules_ok && reason_ok
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "FAIL {} {}", self.location, self.name)?;
        let e = &self.expected;
        let a = &self.actual;
        let line = |f: &mut fmt::Formatter<'_>, key: &str, want: String, got: String| {
            if want == got {
                writeln!(f, "    {key}: {got}")
            } else {
                writeln!(f, "  - {key}: {want}")?;
                writeln!(f, "  + {key}: {got}")
            }
        };
        line(f, "tier", e.tier.as_str().into(), a.tier.as_str().into())?;
        let got_rules: Vec<&str> = a.rules.iter().map(|r| r.id.as_ref()).collect();
        if let Some(want) = &e.rules {
            let mut want = want.clone();
            want.sort();
            let mut got = got_rules.clone();
            got.sort_unstable();
            line(
                f,
                "rules",
                format!("[{}]", want.join(", ")),
                format!("[{}]", got.join(", ")),
            )?;
        } else {
            writeln!(f, "    rules: [{}]", got_rules.join(", "))?;
        }
        if let Some(want) = &e.reason_contains
            && !a.reason.contains(want.as_str())
        {
            writeln!(f, "  - reason containing: {want}")?;
        }
        writeln!(f, "    reason: {}", a.reason)
    }
}

impl fmt::Display for FixtureReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            writeln!(f, "{e}")?;
        }
        for fail in &self.failures {
            write!(f, "{fail}")?;
        }
        let failed = self.failures.len() + self.errors.len();
        writeln!(f, "{} passed, {} failed", self.passed, failed)
    }
}

#[cfg(test)]
mod tests;
