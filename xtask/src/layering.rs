//! `cargo xtask layering`: no import cycle among the modules (files) of
//! one subsystem of `agent-sidecar/src` (`policy`, `proxy`, `gateway`, ...).
//!
//! Every `use` leaf and every path of the code (`crate::a::b`,
//! `super::x::Y`, `child::f`, `Alias::Variant`) is resolved to the file
//! that defines what it names: through `use` bindings and re-exports, so
//! that importing `crate::policy::Tier` (re-exported by `policy.rs`) is an
//! import of `policy/model/tier.rs`. A module using its own child, or a
//! child using an item defined in its parent, is an import like any other;
//! declaring `mod child;` is not. Test code (`#[cfg(test)]` items,
//! `tests.rs` and other modules declared under `#[cfg(test)]`) is left out.
//!
//! Each strongly connected component of more than one module inside one
//! subsystem is reported with a shortest cycle and every import line
//! between its modules; any makes the command fail.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context, Result, bail};

mod graph;
mod lex;
mod parse;

use graph::{Graph, Tree, cycles, shortest_cycle};

/// The crate checked, relative to the workspace root.
const SRC: &str = "agent-sidecar/src";

/// At most this many import lines are quoted per edge of a cycle.
const LINES_PER_EDGE: usize = 4;

/// Checks `agent-sidecar/src` under `root`.
pub(crate) fn check(root: &Path) -> Result<()> {
    let src = root.join(SRC);
    let read = |file: &str| std::fs::read_to_string(src.join(file)).ok();
    let tree = Tree::load(&["lib.rs", "main.rs"], &read)
        .with_context(|| format!("reading the modules of {}", src.display()))?;
    let graph = tree.graph();
    let report = report(&tree, &graph);
    if report.cycles == 0 {
        eprintln!(
            "layering: {} modules, {} imports between them, no cycle inside a subsystem",
            tree.modules.len(),
            graph.len()
        );
        return Ok(());
    }
    eprint!("{}", report.text);
    bail!(
        "{} import cycle(s) inside a subsystem of {SRC}: move what the modules share down (see docs/architecture.md)",
        report.cycles
    )
}

/// What [`report`] found.
pub(crate) struct Report {
    /// How many cycles.
    pub(crate) cycles: usize,
    /// Their description.
    pub(crate) text: String,
}

/// The cycles inside one subsystem, each with a shortest cycle through its
/// first module and the import lines between its modules.
pub(crate) fn report(tree: &Tree, graph: &Graph) -> Report {
    let m = &tree.modules;
    let same_subsystem =
        |a: usize, b: usize| !m[a].subsystem().is_empty() && m[a].subsystem() == m[b].subsystem();
    let components = cycles(m.len(), graph, same_subsystem);
    let mut text = String::new();
    for members in &components {
        let name = |v: usize| m[v].path.join("::");
        let cycle: Vec<String> = shortest_cycle(graph, members, members[0])
            .into_iter()
            .chain([members[0]])
            .map(name)
            .collect();
        let _ = writeln!(
            text,
            "cycle in `{}` ({} modules: {}):\n  {}",
            m[members[0]].subsystem(),
            members.len(),
            members
                .iter()
                .map(|&v| m[v].file.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            cycle.join(" -> ")
        );
        let inside: BTreeMap<_, _> = graph
            .iter()
            .filter(|((a, b), _)| members.contains(a) && members.contains(b))
            .collect();
        for ((a, b), edge) in inside {
            let _ = writeln!(text, "  {} -> {}", m[*a].file, m[*b].file);
            let lines: Vec<&str> = m[*a].source.lines().collect();
            for &line in edge.lines.iter().take(LINES_PER_EDGE) {
                let quoted = lines.get(line - 1).map_or("", |l| l.trim());
                let _ = writeln!(text, "    {SRC}/{}:{line}: {quoted}", m[*a].file);
            }
            if edge.lines.len() > LINES_PER_EDGE {
                let _ = writeln!(
                    text,
                    "    ... and {} more lines",
                    edge.lines.len() - LINES_PER_EDGE
                );
            }
        }
    }
    Report {
        cycles: components.len(),
        text,
    }
}

#[cfg(test)]
mod tests;
