//! Tier policy engine benchmark: compile time and decision latency of a
//! synthetic organisation with 10,000 rules over 3 hierarchy levels (base,
//! 20 teams, 1,000 agents) and 500 declared actions, side by side with an
//! equivalent permit/forbid policy set evaluated by the `cedar-policy`
//! crate in the same run.
//!
//! ```sh
//! cargo bench -p agent-sidecar-policy-bench --bench policy                     # print the report, then criterion
//! BENCH_WRITE_DOCS=1 cargo bench -p agent-sidecar-policy-bench --bench policy  # also rewrite docs/benchmarks-policy.md
//! ```
//!
//! Equivalence: each of our rules becomes one Cedar `forbid` policy with
//! the same scope (everyone / `principal in Team` / `principal ==
//! Agent`), action and condition, annotated with its tier, plus one
//! `permit` for everything; the Cedar "tier" of a request is the highest
//! tier among the forbid policies in the response's reasons (1 if none).
//! The bench checks that both engines give the same tier for every
//! sampled request before timing anything.

use std::{
    fmt::Write as _,
    hint::black_box,
    str::FromStr,
    time::{Duration, Instant},
};

use agent_sidecar::policy::{
    Action, AgentIdentity, Attributes, CompiledPolicySet, Money, Snapshot, Tier, source::SourceFile,
};
use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use criterion::Criterion;

const TOOLS: usize = 50;
const ACTIONS_PER_TOOL: usize = 10;
const TEAMS: usize = 20;
const AGENTS: usize = 1_000;
const BASE_RULES: usize = 2_000;
const RULES_PER_TEAM: usize = 150;
const RULES_PER_AGENT: usize = 5;
const SAMPLES: usize = 200_000;
const CEDAR_SAMPLES: usize = 2_000;

/// A small deterministic PRNG (xorshift64*), so every run builds the same set.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One generated rule, in both languages.
struct GenRule {
    tool: usize,
    action: usize,
    /// `amount > X` (dollars), `records >= X`, or sensitivity contains pii.
    cond: Cond,
    tier: u8,
}

enum Cond {
    AmountGt(u64),
    RecordsGte(u64),
    Pii,
}

impl GenRule {
    fn yaml(&self, id: &str) -> String {
        let c = match self.cond {
            Cond::AmountGt(x) => format!("amount: {{ gt: {x} }}"),
            Cond::RecordsGte(x) => format!("records: {{ gte: {x} }}"),
            Cond::Pii => "sensitivity: { any_of: [pii] }".into(),
        };
        format!(
            "  - id: {id}\n    when: {{ tool: t{}, action: a{}, {c} }}\n    tier: {}\n",
            self.tool, self.action, self.tier
        )
    }

    fn cedar(&self, id: &str, principal: &str) -> String {
        let c = match self.cond {
            Cond::AmountGt(x) => format!("context.amount_cents > {}", x * 100),
            Cond::RecordsGte(x) => format!("context.records >= {x}"),
            Cond::Pii => "context.sensitivity.contains(\"pii\")".into(),
        };
        format!(
            "@id(\"{id}\")\n@tier(\"{}\")\nforbid({principal}, action == Action::\"t{}.a{}\", resource) when {{ {c} }};\n",
            self.tier, self.tool, self.action
        )
    }
}

fn gen_rule(rng: &mut Rng, tiers: [u8; 2]) -> GenRule {
    let cond = match rng.below(5) {
        0 => Cond::RecordsGte(100 * (1 + rng.below(1_000) as u64)),
        1 => Cond::Pii,
        _ => Cond::AmountGt(50 * (1 + rng.below(2_000) as u64)),
    };
    GenRule {
        tool: rng.below(TOOLS),
        action: rng.below(ACTIONS_PER_TOOL),
        cond,
        tier: tiers[rng.below(2)],
    }
}

struct Generated {
    files: Vec<SourceFile>,
    cedar: String,
    entities: serde_json::Value,
}

/// Tiers rise with depth (base 1-2, teams 2-3, agents 3-4), so no child
/// rule can be refused as lowering a parent's.
fn generate() -> Generated {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cedar = String::from("@id(\"allow-all\")\npermit(principal, action, resource);\n");
    let mut base = String::from("kind: base\nname: bench\nlabel: bench-1\ntools:\n");
    for t in 0..TOOLS {
        let _ = write!(
            base,
            "  - name: t{t}\n    http: {{ host: t{t}.example }}\n    attributes:\n      amount: {{ body: /amount }}\n      records: {{ body: /records }}\n      sensitivity: {{ body: /sensitivity }}\n    actions:\n"
        );
        for a in 0..ACTIONS_PER_TOOL {
            let _ = writeln!(base, "      - {{ name: a{a}, method: POST, path: /a{a} }}");
        }
    }
    base.push_str("rules:\n");
    for i in 0..BASE_RULES {
        let r = gen_rule(&mut rng, [1, 2]);
        base.push_str(&r.yaml(&format!("b{i}")));
        cedar.push_str(&r.cedar(&format!("b{i}"), "principal"));
    }
    let mut files = vec![SourceFile {
        path: "org.yaml".into(),
        text: base,
    }];
    for team in 0..TEAMS {
        let mut doc = format!("kind: team\nname: team{team}\nrules:\n");
        for i in 0..RULES_PER_TEAM {
            let r = gen_rule(&mut rng, [2, 3]);
            let id = format!("team{team}.r{i}");
            doc.push_str(&r.yaml(&id));
            cedar.push_str(&r.cedar(&id, &format!("principal in Team::\"team{team}\"")));
        }
        files.push(SourceFile {
            path: format!("teams/team{team}.yaml"),
            text: doc,
        });
    }
    let mut entities = Vec::new();
    for team in 0..TEAMS {
        entities.push(serde_json::json!({"uid": {"type": "Team", "id": format!("team{team}")}, "attrs": {}, "parents": []}));
    }
    for agent in 0..AGENTS {
        let team = agent % TEAMS;
        let mut doc = format!(
            "kind: agent\nid: agent{agent}\nowner: owner{agent}@bench.example\npurpose: bench\nteam: team{team}\nrules:\n"
        );
        for i in 0..RULES_PER_AGENT {
            let r = gen_rule(&mut rng, [3, 4]);
            let id = format!("agent{agent}.r{i}");
            doc.push_str(&r.yaml(&id));
            cedar.push_str(&r.cedar(&id, &format!("principal == Agent::\"agent{agent}\"")));
        }
        files.push(SourceFile {
            path: format!("agents/agent{agent}.yaml"),
            text: doc,
        });
        entities.push(serde_json::json!({
            "uid": {"type": "Agent", "id": format!("agent{agent}")},
            "attrs": {},
            "parents": [{"type": "Team", "id": format!("team{team}")}]
        }));
    }
    Generated {
        files,
        cedar,
        entities: serde_json::Value::Array(entities),
    }
}

/// One request, in both forms.
struct Sample {
    action: Action,
    cedar: Request,
}

fn samples(n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let agent = rng.below(AGENTS);
            let (t, a) = (rng.below(TOOLS), rng.below(ACTIONS_PER_TOOL));
            let amount = rng.below(120_000) as u64;
            let records = rng.below(120_000) as u64;
            let pii = rng.below(4) == 0;
            let sens = if pii { vec!["pii"] } else { vec!["internal"] };
            let action = Action {
                agent: AgentIdentity {
                    id: format!("agent{agent}"),
                    environment: "prod".into(),
                    ..Default::default()
                },
                tool: Some(format!("t{t}")),
                action: Some(format!("a{a}")),
                target: None,
                attributes: Attributes {
                    amount: Some(Money {
                        value: amount as f64,
                        currency: None,
                    }),
                    records: Some(records),
                    sensitivity: Some(sens.iter().map(|s| s.to_string()).collect()),
                    ..Default::default()
                },
            };
            let context = Context::from_json_value(
                serde_json::json!({"amount_cents": amount * 100, "records": records, "sensitivity": sens}),
                None,
            )
            .expect("context");
            let cedar = Request::new(
                EntityUid::from_str(&format!("Agent::\"agent{agent}\"")).expect("uid"),
                EntityUid::from_str(&format!("Action::\"t{t}.a{a}\"")).expect("uid"),
                EntityUid::from_str("Tool::\"any\"").expect("uid"),
                context,
                None,
            )
            .expect("request");
            Sample { action, cedar }
        })
        .collect()
}

struct Cedar {
    authorizer: Authorizer,
    policies: PolicySet,
    entities: Entities,
}

impl Cedar {
    /// The tier Cedar's answer stands for: the highest `@tier` among the
    /// forbid policies that applied, 1 if none did.
    fn tier(&self, r: &Request) -> u8 {
        let resp = self
            .authorizer
            .is_authorized(r, &self.policies, &self.entities);
        resp.diagnostics()
            .reason()
            .filter_map(|id| self.policies.annotation(id, "tier"))
            .filter_map(|t| t.parse::<u8>().ok())
            .max()
            .unwrap_or(1)
    }
}

fn rank(t: Tier) -> u8 {
    t.rank()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Times each call separately; returns sorted nanoseconds.
fn time_each<T>(items: &[T], mut f: impl FnMut(&T)) -> Vec<u64> {
    for item in items.iter().take(1_000) {
        f(item);
    }
    let mut out: Vec<u64> = items
        .iter()
        .map(|item| {
            let start = Instant::now();
            f(item);
            start.elapsed().as_nanos() as u64
        })
        .collect();
    out.sort_unstable();
    out
}

fn median_of(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn timer_overhead() -> u64 {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let s = Instant::now();
            s.elapsed().as_nanos() as u64
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let mem = read("/proc/meminfo")
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<u64>().ok())
        .map_or("unknown".into(), |k| format!("{} GiB", k / 1024 / 1024));
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
    vec![
        ("CPU".into(), format!("{cpus} x {cpu}")),
        ("memory".into(), mem),
        ("kernel".into(), kernel),
        ("rustc".into(), rustc),
        ("cedar-policy".into(), "4.x (dev-dependency)".into()),
        ("load average at start".into(), load),
    ]
}

fn ns(v: u64) -> String {
    if v >= 10_000 {
        format!("{:.1} us", v as f64 / 1000.0)
    } else {
        format!("{v} ns")
    }
}

fn main() {
    let started = Instant::now();
    let machine = machine();
    let generated = generate();
    let rules = BASE_RULES + TEAMS * RULES_PER_TEAM + AGENTS * RULES_PER_AGENT;

    // Compile times.
    let mut ours = Vec::new();
    let mut set = None;
    for _ in 0..5 {
        let snapshot = Snapshot::from_files("bench", generated.files.clone());
        let t = Instant::now();
        let s = CompiledPolicySet::compile(snapshot).unwrap_or_else(|e| panic!("{e}"));
        ours.push(t.elapsed());
        set = Some(s);
    }
    let set = set.expect("compiled");
    assert_eq!(set.summary().rules, rules);
    let compile_ours = median_of(ours);
    let mut theirs = Vec::new();
    let mut policies = None;
    for _ in 0..5 {
        let t = Instant::now();
        let p = PolicySet::from_str(&generated.cedar).expect("cedar policies parse");
        theirs.push(t.elapsed());
        policies = Some(p);
    }
    let compile_cedar = median_of(theirs);
    let cedar = Cedar {
        authorizer: Authorizer::new(),
        policies: policies.expect("parsed"),
        entities: Entities::from_json_value(generated.entities.clone(), None).expect("entities"),
    };

    // Same answers before any timing.
    let check = samples(CEDAR_SAMPLES, 7);
    let mut by_tier = [0usize; 6];
    for s in &check {
        let (a, b) = (rank(set.decide(&s.action).tier), cedar.tier(&s.cedar));
        assert_eq!(a, b, "engines disagree on {:?}", s.action);
        by_tier[a as usize] += 1;
    }

    let overhead = timer_overhead();
    let ours_ns = time_each(&samples(SAMPLES, 11), |s| {
        black_box(set.decide(black_box(&s.action)));
    });
    let cedar_ns = time_each(&samples(CEDAR_SAMPLES, 13), |s| {
        black_box(cedar.tier(black_box(&s.cedar)));
    });
    let (o50, o99, o999) = (
        percentile(&ours_ns, 0.5),
        percentile(&ours_ns, 0.99),
        percentile(&ours_ns, 0.999),
    );
    let (c50, c99) = (percentile(&cedar_ns, 0.5), percentile(&cedar_ns, 0.99));

    let mut r = String::new();
    let _ = writeln!(r, "# Benchmarks: tier policy engine\n");
    let _ = writeln!(
        r,
        "Produced by `policy-bench/benches/policy.rs`; every number below is from one run of it.\n"
    );
    let _ = writeln!(
        r,
        "## How to run\n\n```sh\nBENCH_WRITE_DOCS=1 cargo bench -p agent-sidecar-policy-bench --bench policy\n```\n"
    );
    let _ = writeln!(
        r,
        "prints this report and rewrites this file (without `BENCH_WRITE_DOCS` it only prints), then runs the criterion benches `policy/decide/ours` and `policy/decide/cedar`. No privileges needed. This run took {} s before criterion.\n",
        started.elapsed().as_secs() + 1
    );
    let _ = writeln!(r, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in &machine {
        let _ = writeln!(r, "| {k} | {v} |");
    }
    let _ = writeln!(r, "\n## Workload\n");
    let _ = writeln!(
        r,
        "- Policy set: 1 base, {TEAMS} teams, {AGENTS} agents (3 hierarchy levels); {TOOLS} tools x {ACTIONS_PER_TOOL} actions declared in the base, each declaring `amount`, `records`, `sensitivity`; **{rules} rules** ({BASE_RULES} base, {} team, {} agent), each scoped to one action with one threshold (`amount > X`, `records >= X`) or class test (`sensitivity any_of [pii]`). Generated by a fixed-seed PRNG: every run compiles the same set.",
        TEAMS * RULES_PER_TEAM,
        AGENTS * RULES_PER_AGENT
    );
    let _ = writeln!(
        r,
        "- Cedar: the same {rules} rules as `forbid` policies (scope `principal`, `principal in Team::\"…\"` or `principal == Agent::\"…\"`, `action == Action::\"tool.action\"`, the condition on `context`) annotated `@tier`, plus one `permit` for everything; {AGENTS} agent and {TEAMS} team entities. Cedar's tier = the highest `@tier` among the forbid policies in the response's reasons (1 if none), computed inside the timed call."
    );
    let _ = writeln!(
        r,
        "- Requests: a random agent, action, amount (0-120,000), record count (0-120,000), and `pii` 1 time in 4. Before timing, {CEDAR_SAMPLES} requests were decided by both engines: **same tier for all** (tier 1: {}, 2: {}, 3: {}, 4: {}).",
        by_tier[1], by_tier[2], by_tier[3], by_tier[4]
    );
    let _ = writeln!(
        r,
        "- Latency: each call timed alone with `Instant` (timer overhead here: {overhead} ns per reading, included in the numbers), after 1,000 warm-up calls; {SAMPLES} calls for ours, {CEDAR_SAMPLES} for Cedar (its calls are far slower). Single thread.\n"
    );
    let _ = writeln!(
        r,
        "## Targets\n\n| target | measured | met |\n|---|---|---|"
    );
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    let _ = writeln!(
        r,
        "| decision p99 <= 5 us (10,000 rules, 3 levels, 1,000 agents) | p99 {} | {} |",
        ns(o99),
        yes(o99 <= 5_000)
    );
    let _ = writeln!(
        r,
        "| compile the set <= 1 s | {:.0} ms | {} |",
        compile_ours.as_secs_f64() * 1000.0,
        yes(compile_ours <= Duration::from_secs(1))
    );
    let _ = writeln!(
        r,
        "| decision at least as fast as cedar-policy | median {:.0}x, p99 {:.0}x faster | {} |\n",
        c50 as f64 / o50 as f64,
        c99 as f64 / o99 as f64,
        yes(o50 <= c50 && o99 <= c99)
    );
    let _ = writeln!(
        r,
        "## Results (same run)\n\n| | agent-sidecar | cedar-policy | ratio (cedar / ours) |\n|---|---|---|---|"
    );
    let _ = writeln!(
        r,
        "| decision, median | {} | {} | {:.0}x |",
        ns(o50),
        ns(c50),
        c50 as f64 / o50 as f64
    );
    let _ = writeln!(
        r,
        "| decision, p99 | {} | {} | {:.0}x |",
        ns(o99),
        ns(c99),
        c99 as f64 / o99 as f64
    );
    let _ = writeln!(r, "| decision, p99.9 | {} | - | - |", ns(o999));
    let _ = writeln!(
        r,
        "| compile / parse the set, median of 5 | {:.0} ms | {:.0} ms | {:.2}x |\n",
        compile_ours.as_secs_f64() * 1000.0,
        compile_cedar.as_secs_f64() * 1000.0,
        compile_cedar.as_secs_f64() / compile_ours.as_secs_f64()
    );
    let _ = writeln!(
        r,
        "Our compile includes YAML parsing, the hierarchy and tighten-only checks and the indexes; Cedar's column is `PolicySet::from_str` only (no schema validation). Our decision includes the `Decision` with its reason text and deciding rules; Cedar's includes the response and the tier mapping.\n"
    );
    let _ = writeln!(
        r,
        "## Why the difference\n\nA decision looks up the agent, the environment overlay and the action in hash maps, then tests only the rules indexed under that action (and its tool, and \"every action\") in each applicable document: base, team, roles, agent, overlay. With this set that is about {:.1} rules per decision on average (the base, team and agent rules of one action), not 10,000. Cedar evaluates every policy whose scope could match (it has no index on `action ==` across 10,000 policies).",
        (BASE_RULES + RULES_PER_TEAM + RULES_PER_AGENT) as f64 / (TOOLS * ACTIONS_PER_TOOL) as f64
    );
    print!("{r}");
    if std::env::var_os("BENCH_WRITE_DOCS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks-policy.md");
        std::fs::write(path, &r).expect("write docs/benchmarks-policy.md");
        eprintln!("wrote {path}");
    }

    let mut c = Criterion::default().configure_from_args();
    let fast = samples(4_096, 17);
    let slow = samples(256, 19);
    let mut g = c.benchmark_group("policy/decide");
    let mut i = 0usize;
    g.bench_function("ours", |b| {
        b.iter(|| {
            i = (i + 1) % fast.len();
            black_box(set.decide(black_box(&fast[i].action)))
        })
    });
    let mut j = 0usize;
    g.sample_size(20).bench_function("cedar", |b| {
        b.iter(|| {
            j = (j + 1) % slow.len();
            black_box(cedar.tier(black_box(&slow[j].cedar)))
        })
    });
    g.finish();
    c.final_summary();
}
