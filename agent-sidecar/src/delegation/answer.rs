//! Validation of a delegated agent's answer against the JSON schema its
//! policy declares for the tool, before the delegating agent sees it.

use std::collections::HashMap;

/// Compiled answer schemas, by tool.
#[derive(Debug, Default)]
pub struct AnswerSchemas {
    by_tool: HashMap<String, jsonschema::Validator>,
}

/// Why an answer was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    /// A schema does not compile.
    #[error("answer schema for tool {tool} is invalid: {reason}")]
    BadSchema {
        /// Tool.
        tool: String,
        /// Compiler message.
        reason: String,
    },
    /// The answer is not JSON.
    #[error("answer of tool {tool} is not JSON: {reason}")]
    NotJson {
        /// Tool.
        tool: String,
        /// Parser message.
        reason: String,
    },
    /// The answer violates the schema.
    #[error("answer of tool {tool} violates its schema at {path}: {reason}")]
    Violation {
        /// Tool.
        tool: String,
        /// JSON pointer of the first violation.
        path: String,
        /// Validator message.
        reason: String,
    },
    /// No schema is declared: answers are refused (fail closed).
    #[error("no answer schema declared for tool {0}; declare one in the callee's policy")]
    NoSchema(String),
}

impl AnswerSchemas {
    /// Adds the schema of `tool`.
    pub fn insert(&mut self, tool: &str, schema: &serde_json::Value) -> Result<(), AnswerError> {
        let v = jsonschema::validator_for(schema).map_err(|e| AnswerError::BadSchema {
            tool: tool.to_string(),
            reason: e.to_string(),
        })?;
        self.by_tool.insert(tool.to_string(), v);
        Ok(())
    }

    /// Validates an answer body.
    pub fn validate(&self, tool: &str, body: &[u8]) -> Result<(), AnswerError> {
        let v = self
            .by_tool
            .get(tool)
            .ok_or_else(|| AnswerError::NoSchema(tool.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| AnswerError::NotJson {
                tool: tool.to_string(),
                reason: e.to_string(),
            })?;
        match v.validate(&value) {
            Ok(()) => Ok(()),
            Err(e) => Err(AnswerError::Violation {
                tool: tool.to_string(),
                path: e.instance_path.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}
