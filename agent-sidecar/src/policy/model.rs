//! The policy model: the YAML documents as parsed and the compiled set
//! they become, with the types decisions are made of. Imports nothing else
//! from `policy`.

pub mod action;
pub(crate) mod condition;
pub(crate) mod decision;
pub mod document;
pub(crate) mod error;
pub(crate) mod location;
pub(crate) mod set;
pub mod source;
pub(crate) mod tier;
pub mod version;
