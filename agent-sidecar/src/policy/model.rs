//! The policy model: the YAML documents as parsed and the compiled set
//! they become, with the types decisions are made of. Imports nothing else
//! from `policy`.

pub mod action;
pub mod approval_chain;
pub(crate) mod attribute;
pub(crate) mod condition;
pub(crate) mod decision;
pub(crate) mod defaults;
pub mod delegation;
pub(crate) mod delegation_check;
pub mod detection;
pub mod document;
pub(crate) mod error;
pub(crate) mod gateway_table;
pub mod grantable;
pub(crate) mod index;
pub(crate) mod interned;
pub(crate) mod links;
pub(crate) mod location;
pub(crate) mod names;
pub mod quota;
pub(crate) mod redaction;
pub(crate) mod scoped_doc;
pub(crate) mod set;
pub mod source;
pub(crate) mod tier;
pub(crate) mod tool;
pub mod version;
pub(crate) mod vocab;
