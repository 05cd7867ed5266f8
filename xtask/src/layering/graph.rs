//! The module tree of a crate's `src/`, the file-to-file import graph
//! made of its `use` declarations and paths, and its cycles.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};

use super::parse::{FileSyntax, parse};

/// Reads a file given its path relative to `src/`; `None` when it does not
/// exist.
pub(crate) type ReadFile<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One module (one file).
#[derive(Debug)]
pub(crate) struct Module {
    /// Its file, relative to `src/` (`policy/model/set.rs`).
    pub(crate) file: String,
    /// Its path from the crate root (`["policy", "model", "set"]`).
    pub(crate) path: Vec<String>,
    parent: Option<usize>,
    crate_root: usize,
    children: BTreeMap<String, usize>,
    /// `use` bindings: name -> the leaf's path, relative to this module.
    bindings: BTreeMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
    /// What the file says.
    pub(crate) syntax: FileSyntax,
    /// Its source, for quoting import lines.
    pub(crate) source: String,
}

impl Module {
    /// The top-level module it belongs to (`policy`), empty for a crate
    /// root.
    pub(crate) fn subsystem(&self) -> &str {
        self.path.first().map_or("", String::as_str)
    }
}

/// Every module reachable from the crate roots through non-test `mod`
/// declarations.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The modules; a crate root is the first of its crate.
    pub(crate) modules: Vec<Module>,
}

/// An import of one module by another, with every line that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edge {
    /// Lines of the importing file.
    pub(crate) lines: BTreeSet<usize>,
}

/// The import graph: (importer, imported) -> lines.
pub(crate) type Graph = BTreeMap<(usize, usize), Edge>;

/// How deep re-exports may chain before a path is given up on.
const MAX_HOPS: usize = 32;

impl Tree {
    /// Reads the crates rooted at `roots` (`lib.rs`, `main.rs`; those that
    /// exist).
    pub(crate) fn load(roots: &[&str], read: ReadFile<'_>) -> Result<Tree> {
        let mut tree = Tree {
            modules: Vec::new(),
        };
        for root in roots {
            let Some(source) = read(root) else { continue };
            let id = tree.modules.len();
            tree.push(root.to_string(), Vec::new(), None, id, source);
            tree.load_children(id, read)?;
        }
        for m in &mut tree.modules {
            for leaf in &m.syntax.uses {
                if leaf.glob {
                    m.globs.push(leaf.path.clone());
                } else if let Some(name) = &leaf.binding {
                    m.bindings
                        .entry(name.clone())
                        .or_insert_with(|| leaf.path.clone());
                }
            }
        }
        Ok(tree)
    }

    fn push(
        &mut self,
        file: String,
        path: Vec<String>,
        parent: Option<usize>,
        crate_root: usize,
        source: String,
    ) {
        let syntax = parse(&source);
        self.modules.push(Module {
            file,
            path,
            parent,
            crate_root,
            children: BTreeMap::new(),
            bindings: BTreeMap::new(),
            globs: Vec::new(),
            syntax,
            source,
        });
    }

    fn load_children(&mut self, id: usize, read: ReadFile<'_>) -> Result<()> {
        if self.modules[id].syntax.test_only {
            return Ok(());
        }
        let file = self.modules[id].file.clone();
        // `lib.rs` -> `x.rs`; `a/b.rs` -> `a/b/x.rs`.
        let dir = if self.modules[id].parent.is_none() {
            String::new()
        } else {
            format!("{}/", file.trim_end_matches(".rs").trim_end_matches("/mod"))
        };
        let decls: Vec<_> = self.modules[id]
            .syntax
            .mods
            .iter()
            .filter(|m| !m.test_only)
            .map(|m| m.name.clone())
            .collect();
        for name in decls {
            let candidates = [format!("{dir}{name}.rs"), format!("{dir}{name}/mod.rs")];
            let Some((child_file, source)) = candidates
                .into_iter()
                .find_map(|f| read(&f).map(|s| (f, s)))
            else {
                bail!(
                    "{file} declares `mod {name};` but neither {dir}{name}.rs nor {dir}{name}/mod.rs exists"
                );
            };
            let child = self.modules.len();
            let mut path = self.modules[id].path.clone();
            path.push(name.clone());
            let root = self.modules[id].crate_root;
            self.push(child_file, path, Some(id), root, source);
            self.modules[id].children.insert(name, child);
            self.load_children(child, read)?;
        }
        Ok(())
    }

    /// The module a path named in module `from` leads to, following
    /// `use` bindings and re-exports to where the item is defined; `None`
    /// for a path outside the crate (`std::...`, a dependency, a local
    /// type's associated item).
    pub(crate) fn resolve(&self, from: usize, path: &[String]) -> Option<usize> {
        self.resolve_hops(from, path, 0)
    }

    fn resolve_hops(&self, from: usize, path: &[String], hops: usize) -> Option<usize> {
        if hops > MAX_HOPS {
            return None;
        }
        let first = path.first()?;
        let m = &self.modules[from];
        // The first segment: a keyword, a child or a binding of `from`.
        let (mut cur, rest) = match first.as_str() {
            "crate" => (m.crate_root, &path[1..]),
            "self" => (from, &path[1..]),
            "super" => {
                let mut cur = from;
                let mut k = 0;
                while path.get(k).is_some_and(|s| s == "super") {
                    cur = self.modules[cur].parent?;
                    k += 1;
                }
                (cur, &path[k..])
            }
            name => {
                if m.children.contains_key(name) {
                    (from, path)
                } else if let Some(target) = m.bindings.get(name) {
                    let mut full = target.clone();
                    full.extend_from_slice(&path[1..]);
                    return self.resolve_hops(from, &full, hops + 1);
                } else {
                    return None;
                }
            }
        };
        for (k, seg) in rest.iter().enumerate() {
            let here = &self.modules[cur];
            if let Some(&child) = here.children.get(seg) {
                cur = child;
            } else if let Some(target) = here.bindings.get(seg) {
                let mut full = target.clone();
                full.extend_from_slice(&rest[k + 1..]);
                return self.resolve_hops(cur, &full, hops + 1);
            } else {
                // An item defined here, or brought in by a glob.
                for glob in &here.globs {
                    let Some(source) = self.resolve_hops(cur, glob, hops + 1) else {
                        continue;
                    };
                    let s = &self.modules[source];
                    if s.children.contains_key(seg) || s.bindings.contains_key(seg) {
                        let mut full = vec!["self".to_string()];
                        full.extend_from_slice(&rest[k..]);
                        return self.resolve_hops(source, &full, hops + 1);
                    }
                }
                return Some(cur);
            }
        }
        Some(cur)
    }

    /// Every import of one module by another: `use` leaves and paths in
    /// code, resolved to the module that defines what they name.
    pub(crate) fn graph(&self) -> Graph {
        let mut graph = Graph::new();
        for (from, m) in self.modules.iter().enumerate() {
            let named = m
                .syntax
                .uses
                .iter()
                .map(|u| (&u.path, u.line))
                .chain(m.syntax.paths.iter().map(|p| (&p.path, p.line)));
            for (path, line) in named {
                let Some(to) = self.resolve(from, path) else {
                    continue;
                };
                if to != from {
                    graph
                        .entry((from, to))
                        .or_insert_with(|| Edge {
                            lines: BTreeSet::new(),
                        })
                        .lines
                        .insert(line);
                }
            }
        }
        graph
    }
}

/// The strongly connected components of more than one module of the
/// graph restricted to edges for which `keep` holds, each sorted, in
/// order of their first module.
pub(crate) fn cycles(
    n: usize,
    graph: &Graph,
    keep: impl Fn(usize, usize) -> bool,
) -> Vec<Vec<usize>> {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in graph.keys() {
        if keep(a, b) {
            adj[a].push(b);
        }
    }
    let mut t = Tarjan {
        adj: &adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    let mut out: Vec<Vec<usize>> = t.out.into_iter().filter(|c| c.len() > 1).collect();
    for c in &mut out {
        c.sort_unstable();
    }
    out.sort();
    out
}

struct Tarjan<'a> {
    adj: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    out: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in self.adj[v].iter() {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.out.push(component);
        }
    }
}

/// A shortest cycle through `start` inside `members`, as the list of
/// modules visited (`start` first, not repeated at the end).
pub(crate) fn shortest_cycle(graph: &Graph, members: &[usize], start: usize) -> Vec<usize> {
    let inside = |v: usize| members.contains(&v);
    let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &(a, b) in graph.keys() {
            if a != v || !inside(b) {
                continue;
            }
            if b == start {
                let mut cycle = vec![v];
                let mut cur = v;
                while cur != start {
                    cur = prev[&cur];
                    cycle.push(cur);
                }
                cycle.reverse();
                return cycle;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(b) {
                e.insert(v);
                queue.push_back(b);
            }
        }
    }
    vec![start]
}
