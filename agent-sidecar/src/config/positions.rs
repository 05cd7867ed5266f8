//! Where each top-level key's value (and each item of a list value) is
//! written in the config file, for errors found after parsing.

use std::collections::HashMap;

use serde_saphyr::granit_parser::Event;

use crate::yaml;

/// `(line, column)`, 1-based, of values by key and list index.
#[derive(Clone, Debug, Default)]
pub(super) struct KeyPositions {
    at: HashMap<(String, Option<usize>), (u32, u32)>,
}

impl KeyPositions {
    /// Indexes the first document of `text` (what can be indexed before a
    /// syntax error).
    pub(super) fn index(text: &str) -> Self {
        let mut at = HashMap::new();
        // Depth of nesting; 1 is the top-level mapping.
        let mut depth = 0usize;
        let mut key: Option<String> = None;
        let mut expecting_value = false;
        let mut item: Option<usize> = None;
        for (ev, span) in yaml::events(text).map_while(Result::ok) {
            let pos = (span.start.line() as u32, span.start.col() as u32 + 1);
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    if depth == 1 && expecting_value {
                        if let Some(k) = &key {
                            at.insert((k.clone(), None), pos);
                        }
                        expecting_value = false;
                        if matches!(ev, Event::SequenceStart(..)) {
                            item = Some(0);
                        }
                    } else if depth == 2
                        && let (Some(k), Some(i)) = (&key, item.as_mut())
                    {
                        at.insert((k.clone(), Some(*i)), pos);
                        *i += 1;
                    }
                    depth += 1;
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    depth = depth.saturating_sub(1);
                    if depth == 1 {
                        item = None;
                    }
                }
                Event::Scalar(text, ..) => {
                    if depth == 1 {
                        if expecting_value {
                            if let Some(k) = &key {
                                at.insert((k.clone(), None), pos);
                            }
                            expecting_value = false;
                        } else {
                            key = Some(text.to_string());
                            expecting_value = true;
                        }
                    } else if depth == 2
                        && let (Some(k), Some(i)) = (&key, item.as_mut())
                    {
                        at.insert((k.clone(), Some(*i)), pos);
                        *i += 1;
                    }
                }
                Event::DocumentEnd => break,
                _ => {}
            }
        }
        KeyPositions { at }
    }

    /// Where the `index`th item of `key` is, or its value, or nothing.
    pub(super) fn at(&self, key: &str, index: Option<usize>) -> (u32, u32) {
        self.at
            .get(&(key.to_string(), index))
            .or_else(|| self.at.get(&(key.to_string(), None)))
            .copied()
            .unwrap_or((0, 0))
    }
}
