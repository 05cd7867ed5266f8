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
//! between its modules; so is each cycle between subsystems (`policy`
//! importing `gateway` while a module of `gateway` imports `policy`),
//! which the data flow rules out too. Any makes the command fail.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::Path,
};

use anyhow::{Context, Result, bail};

mod graph;
mod lex;
mod parse;

use graph::{Edge, Graph, Tree, cycles, shortest_cycle};

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
    let inside = report(&tree, &graph);
    let between = subsystem_report(&tree, &graph);
    if inside.cycles + between.cycles == 0 {
        eprintln!(
            "layering: {} modules, {} imports between them, no cycle inside a subsystem or between subsystems",
            tree.modules.len(),
            graph.len()
        );
        return Ok(());
    }
    eprint!("{}{}", inside.text, between.text);
    bail!(
        "{} import cycle(s) inside a subsystem of {SRC} and {} between subsystems: move what the modules share down (see docs/architecture.md)",
        inside.cycles,
        between.cycles
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
        for (&(a, b), edge) in inside {
            quote(&mut text, tree, a, b, edge);
        }
    }
    Report {
        cycles: components.len(),
        text,
    }
}

/// The cycles between subsystems: in the graph whose nodes are the
/// subsystems, with an edge where any module of one imports any module of
/// the other, each component of more than one subsystem, with a shortest
/// cycle and the import lines that cross between its subsystems.
pub(crate) fn subsystem_report(tree: &Tree, graph: &Graph) -> Report {
    let m = &tree.modules;
    let names: Vec<&str> = m
        .iter()
        .map(|module| module.subsystem())
        .filter(|s| !s.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let index = |v: usize| names.binary_search(&m[v].subsystem()).ok();
    let mut collapsed = Graph::new();
    for &(a, b) in graph.keys() {
        if let (Some(x), Some(y)) = (index(a), index(b))
            && x != y
        {
            collapsed.entry((x, y)).or_insert_with(|| Edge {
                lines: BTreeSet::new(),
            });
        }
    }
    let components = cycles(names.len(), &collapsed, |_, _| true);
    let mut text = String::new();
    for members in &components {
        let cycle: Vec<&str> = shortest_cycle(&collapsed, members, members[0])
            .into_iter()
            .chain([members[0]])
            .map(|i| names[i])
            .collect();
        let _ = writeln!(
            text,
            "cycle between subsystems ({}):\n  {}",
            members
                .iter()
                .map(|&i| names[i])
                .collect::<Vec<_>>()
                .join(", "),
            cycle.join(" -> ")
        );
        let inside = |v: usize| index(v).is_some_and(|i| members.contains(&i));
        for (&(a, b), edge) in graph {
            if inside(a) && inside(b) && index(a) != index(b) {
                quote(&mut text, tree, a, b, edge);
            }
        }
    }
    Report {
        cycles: components.len(),
        text,
    }
}

/// Writes `a -> b` and the first lines of `a` that import `b`.
fn quote(text: &mut String, tree: &Tree, a: usize, b: usize, edge: &Edge) {
    let m = &tree.modules;
    let _ = writeln!(text, "  {} -> {}", m[a].file, m[b].file);
    let lines: Vec<&str> = m[a].source.lines().collect();
    for &line in edge.lines.iter().take(LINES_PER_EDGE) {
        let quoted = lines.get(line - 1).map_or("", |l| l.trim());
        let _ = writeln!(text, "    {SRC}/{}:{line}: {quoted}", m[a].file);
    }
    if edge.lines.len() > LINES_PER_EDGE {
        let _ = writeln!(
            text,
            "    ... and {} more lines",
            edge.lines.len() - LINES_PER_EDGE
        );
    }
}

#[cfg(test)]
mod tests;
