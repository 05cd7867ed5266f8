//! What one file says about its neighbours: the modules it declares, the
//! `use` declarations it makes and the paths its code names. Items under
//! `#[cfg(test)]` are left out, so are `mod tests { ... }` blocks.

use super::lex::{Tok, Token, lex};

/// A `mod name;` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModDecl {
    /// The module's name.
    pub(crate) name: String,
    /// Declared under `#[cfg(test)]`: not part of the layering.
    pub(crate) test_only: bool,
}

/// One leaf of a `use` tree: `use a::{b, c::d as e};` has two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UseLeaf {
    /// The full path (`a::c::d`); for `a::{self}` it is `a`.
    pub(crate) path: Vec<String>,
    /// The name it binds in the module (`e`), `None` for `as _` and globs.
    pub(crate) binding: Option<String>,
    /// `a::*`.
    pub(crate) glob: bool,
    /// The line of the leaf.
    pub(crate) line: usize,
}

/// A path of two or more segments in code (`super::x::f`, `Tier::One`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathRef {
    /// Its segments.
    pub(crate) path: Vec<String>,
    /// Its line.
    pub(crate) line: usize,
}

/// The layering-relevant content of one file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FileSyntax {
    /// `mod x;` declarations.
    pub(crate) mods: Vec<ModDecl>,
    /// Every `use` leaf, at module level or inside a body.
    pub(crate) uses: Vec<UseLeaf>,
    /// Every other path of two or more segments.
    pub(crate) paths: Vec<PathRef>,
    /// `#![cfg(test)]` at the top: the whole file is test code.
    pub(crate) test_only: bool,
}

/// Parses the source of one file.
pub(crate) fn parse(src: &str) -> FileSyntax {
    let mut p = Parser {
        t: lex(src),
        i: 0,
        out: FileSyntax::default(),
    };
    p.run();
    p.out
}

struct Parser {
    t: Vec<Token>,
    i: usize,
    out: FileSyntax,
}

/// Keywords that start an item: an item under `#[cfg(test)]` is skipped
/// up to its `;` or its body, whatever commas its generics hold.
const ITEM_KEYWORDS: [&str; 16] = [
    "fn",
    "struct",
    "enum",
    "impl",
    "trait",
    "mod",
    "use",
    "const",
    "static",
    "type",
    "union",
    "macro_rules",
    "unsafe",
    "async",
    "extern",
    "pub",
];

impl Parser {
    fn tok(&self, k: usize) -> Option<&Tok> {
        self.t.get(self.i + k).map(|t| &t.tok)
    }

    fn is_ident(&self, k: usize, word: &str) -> bool {
        matches!(self.tok(k), Some(Tok::Ident(w)) if w == word)
    }

    fn is_punct(&self, k: usize, ch: char) -> bool {
        self.tok(k) == Some(&Tok::Punct(ch))
    }

    fn run(&mut self) {
        while self.i < self.t.len() {
            if self.is_punct(0, '#') {
                let inner = self.is_punct(1, '!');
                if self.attribute_is_cfg_test() {
                    if inner {
                        self.out.test_only = true;
                    } else {
                        self.skip_item();
                    }
                }
            } else if self.is_ident(0, "mod")
                && matches!(self.tok(1), Some(Tok::Ident(_)))
                && self.is_punct(2, ';')
            {
                if let Some(Tok::Ident(name)) = self.tok(1) {
                    let name = name.clone();
                    self.out.mods.push(ModDecl {
                        name,
                        test_only: false,
                    });
                }
                self.i += 3;
            } else if self.is_ident(0, "use") && !self.is_punct(1, '<') {
                self.i += 1;
                self.use_tree(Vec::new());
                // Past the `;` (or whatever the tree stopped at).
                self.i += 1;
            } else if self.path_starts_here() {
                self.path();
            } else {
                self.i += 1;
            }
        }
    }

    /// At `#`: consumes the attribute and says whether it is `cfg(test)`.
    fn attribute_is_cfg_test(&mut self) -> bool {
        let mut k = 1;
        if self.is_punct(k, '!') {
            k += 1;
        }
        if !self.is_punct(k, '[') {
            self.i += 1;
            return false;
        }
        let start = self.i + k + 1;
        let mut depth = 0usize;
        let mut j = self.i + k;
        while j < self.t.len() {
            match self.t[j].tok {
                Tok::Punct('[') => depth += 1,
                Tok::Punct(']') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let body: Vec<&Tok> = self.t[start..j.min(self.t.len())]
            .iter()
            .map(|t| &t.tok)
            .collect();
        self.i = j + 1;
        matches!(
            body.as_slice(),
            [Tok::Ident(cfg), Tok::Punct('('), Tok::Ident(test), Tok::Punct(')')]
                if cfg == "cfg" && test == "test"
        )
    }

    /// Skips the item, field or statement that a `#[cfg(test)]` applies
    /// to, recording a `mod x;` it declares as test-only.
    fn skip_item(&mut self) {
        // Further attributes of the same item.
        while self.is_punct(0, '#') {
            self.attribute_is_cfg_test();
        }
        let mut k = 0;
        while self.is_ident(k, "pub") {
            k += 1;
            if self.is_punct(k, '(') {
                while self.tok(k).is_some() && !self.is_punct(k, ')') {
                    k += 1;
                }
                k += 1;
            }
        }
        if self.is_ident(k, "mod") && self.is_punct(k + 2, ';') {
            if let Some(Tok::Ident(name)) = self.tok(k + 1) {
                let name = name.clone();
                self.out.mods.push(ModDecl {
                    name,
                    test_only: true,
                });
            }
            self.i += k + 3;
            return;
        }
        let is_item =
            matches!(self.tok(0), Some(Tok::Ident(w)) if ITEM_KEYWORDS.contains(&w.as_str()));
        let mut depth = 0usize;
        while let Some(tok) = self.tok(0) {
            match tok {
                Tok::Punct('(' | '[') => depth += 1,
                Tok::Punct('{') => depth += 1,
                Tok::Punct(')' | ']') => depth = depth.saturating_sub(1),
                Tok::Punct('}') => {
                    if depth == 0 {
                        // The end of the enclosing block: not ours.
                        return;
                    }
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return;
                    }
                }
                Tok::Punct(';') if depth == 0 => {
                    self.i += 1;
                    return;
                }
                Tok::Punct(',') if depth == 0 && !is_item => {
                    self.i += 1;
                    return;
                }
                _ => {}
            }
            self.i += 1;
        }
    }

    /// One use tree below `prefix`; leaves the cursor after it.
    fn use_tree(&mut self, prefix: Vec<String>) {
        let mut path = prefix;
        if self.tok(0) == Some(&Tok::PathSep) {
            // `::name`: an external crate.
            path.push("::".into());
            self.i += 1;
        }
        loop {
            match self.tok(0).cloned() {
                Some(Tok::Ident(name)) => {
                    let line = self.t[self.i].line;
                    self.i += 1;
                    if self.tok(0) == Some(&Tok::PathSep) {
                        path.push(name);
                        self.i += 1;
                        continue;
                    }
                    let mut binding = if name == "self" {
                        path.last().cloned()
                    } else {
                        path.push(name.clone());
                        Some(name)
                    };
                    if self.is_ident(0, "as") {
                        if let Some(Tok::Ident(alias)) = self.tok(1) {
                            binding = (alias != "_").then(|| alias.clone());
                        }
                        self.i += 2;
                    }
                    self.out.uses.push(UseLeaf {
                        path,
                        binding,
                        glob: false,
                        line,
                    });
                    return;
                }
                Some(Tok::Punct('*')) => {
                    let line = self.t[self.i].line;
                    self.i += 1;
                    self.out.uses.push(UseLeaf {
                        path,
                        binding: None,
                        glob: true,
                        line,
                    });
                    return;
                }
                Some(Tok::Punct('{')) => {
                    self.i += 1;
                    loop {
                        match self.tok(0) {
                            None => return,
                            Some(Tok::Punct('}')) => {
                                self.i += 1;
                                return;
                            }
                            Some(Tok::Punct(',')) => self.i += 1,
                            Some(_) => {
                                let before = self.i;
                                self.use_tree(path.clone());
                                if self.i == before {
                                    self.i += 1;
                                }
                            }
                        }
                    }
                }
                _ => return,
            }
        }
    }

    /// An identifier followed by `::` and another identifier, and not
    /// itself the continuation of a path (`<T as X>::f`, `::std::x`).
    fn path_starts_here(&self) -> bool {
        matches!(self.tok(0), Some(Tok::Ident(_)))
            && self.tok(1) == Some(&Tok::PathSep)
            && matches!(self.tok(2), Some(Tok::Ident(_)))
            && (self.i == 0 || self.t[self.i - 1].tok != Tok::PathSep)
    }

    fn path(&mut self) {
        let line = self.t[self.i].line;
        let mut path = Vec::new();
        while let Some(Tok::Ident(seg)) = self.tok(0) {
            path.push(seg.clone());
            if self.tok(1) == Some(&Tok::PathSep) && matches!(self.tok(2), Some(Tok::Ident(_))) {
                self.i += 2;
            } else {
                self.i += 1;
                break;
            }
        }
        self.out.paths.push(PathRef { path, line });
    }
}
