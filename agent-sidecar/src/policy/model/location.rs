//! Where things are written: `file:line:column` for every node of a policy
//! document, so that errors found after parsing (a child lowering its
//! parent's tier, a rule naming an undeclared attribute) point at the exact
//! place, and at the parent's place too.

use std::{collections::HashMap, fmt, sync::Arc};

use serde_saphyr::granit_parser::{Event, Marker};

use crate::yaml;

/// A place in a policy file. Line and column are 1-based; a line of 0
/// means the whole file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file, as the user named it (policy directory joined with the
    /// file's path inside it).
    pub file: Arc<str>,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub column: u32,
}

impl Location {
    /// The whole file.
    pub fn file(file: Arc<str>) -> Self {
        Location {
            file,
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// Positions of the nodes of one YAML document, keyed by path:
/// `rules[2].when.amount` (sequence indices are 0-based).
#[derive(Debug, Default)]
pub(crate) struct Positions {
    file: Arc<str>,
    nodes: HashMap<String, (u32, u32)>,
}

impl Positions {
    /// Indexes `text`. A document the event parser cannot read yields an
    /// empty index (the serde parse reports that error with its position).
    pub(crate) fn index(file: Arc<str>, text: &str) -> Self {
        let mut walker = Walker::default();
        // Only the node positions are wanted; a scan error leaves what was
        // indexed so far, which is still useful.
        for (ev, span) in yaml::events(text).map_while(Result::ok) {
            if walker.done {
                break;
            }
            walker.on_event(ev, span.start);
        }
        Positions {
            file,
            nodes: walker.nodes,
        }
    }

    /// The location of the node at `path`, or of its nearest indexed
    /// ancestor, or the whole file.
    pub(crate) fn at(&self, path: &str) -> Location {
        let mut p = path;
        loop {
            if let Some(&(line, column)) = self.nodes.get(p) {
                return Location {
                    file: self.file.clone(),
                    line,
                    column,
                };
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None if !p.is_empty() => p = "",
                None => return Location::file(self.file.clone()),
            }
        }
    }

    /// The file these positions are in.
    pub(crate) fn file_name(&self) -> &Arc<str> {
        &self.file
    }
}

enum Frame {
    Mapping {
        path: String,
        key: Option<String>,
        /// Where the parser put the mapping's start, until its first key
        /// is seen.
        start: Option<Marker>,
    },
    Sequence {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    nodes: HashMap<String, (u32, u32)>,
    done: bool,
}

impl Walker {
    /// The path of the node that starts now, or `None` if it is a mapping key.
    fn node_path(&mut self, key_text: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Sequence { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Mapping { path, key, .. }) => match key.take() {
                None => {
                    // This node is a key; complex keys are indexed as `?`.
                    *key = Some(key_text.unwrap_or("?").to_string());
                    None
                }
                Some(k) if path.is_empty() => Some(k),
                Some(k) => Some(format!("{path}.{k}")),
            },
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        self.nodes
            .entry(path.to_string())
            .or_insert((mark.line() as u32, mark.col() as u32 + 1));
    }

    /// The parser marks a block mapping's start after its first key; a
    /// mapping is where its first key is (a flow mapping's `{` comes first
    /// and is kept).
    fn first_key(&mut self, mark: Marker) {
        if let Some(Frame::Mapping {
            path,
            key: None,
            start,
        }) = self.stack.last_mut()
            && let Some(s) = start.take()
            && s.index() > mark.index()
        {
            let pos = (mark.line() as u32, mark.col() as u32 + 1);
            self.nodes.insert(path.clone(), pos);
        }
    }
}

impl Walker {
    fn on_event(&mut self, ev: Event<'_>, mark: Marker) {
        match ev {
            Event::Scalar(text, ..) => {
                self.first_key(mark);
                if let Some(p) = self.node_path(Some(&text)) {
                    self.record(&p, mark);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.node_path(None) {
                    self.record(&p, mark);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                self.first_key(mark);
                let path = match self.node_path(None) {
                    Some(p) => {
                        self.record(&p, mark);
                        p
                    }
                    None => "?".to_string(),
                };
                self.stack.push(match ev {
                    Event::MappingStart(..) => Frame::Mapping {
                        path,
                        key: None,
                        start: Some(mark),
                    },
                    _ => Frame::Sequence { path, next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::DocumentEnd => self.done = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
