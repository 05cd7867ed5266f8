//! [`Ids`]: the names of tools, actions and classes that descriptions of
//! conditions and decisions use.

use super::{
    tool::{ActionInfo, Tool},
    vocab::Vocab,
};

/// Names of tools, actions and classes, for descriptions.
pub(crate) struct Ids<'a> {
    pub(crate) tools: &'a [Tool],
    pub(crate) actions: &'a [ActionInfo],
    pub(crate) vocab: &'a Vocab,
}

impl Ids<'_> {
    pub(crate) fn tool_name(&self, t: u32) -> &str {
        &self.tools[t as usize].name
    }

    pub(crate) fn action_name(&self, a: u32) -> &str {
        &self.actions[a as usize].qualified
    }
}
