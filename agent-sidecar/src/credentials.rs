//! Secrets the agent never holds: loaded by the sidecar from files or its
//! environment, injected into upstream requests, and kept out of every
//! log, error and debug print.
//!
//! - [`Secret`]: the bytes, redacted when printed, wiped when dropped;
//! - [`SecretSpec`]: `NAME=file:/path` or `NAME=env:VAR` from the command line;
//! - [`SecretStore`]: the loaded secrets, by name, and [`SecretStore::redact`]
//!   for upstream error texts;
//! - [`Injection`]: how a route puts its secret into a header, and
//!   [`strip_agent_credentials`] for routes that inject none;
//! - [`Redactor`]: the injected credential in all the forms a tool may
//!   echo it, removed from every answer to the agent.

mod error;
mod inject;
mod redact;
mod secret;
mod spec;
mod store;

pub use error::CredentialError;
pub use inject::{Injection, strip_agent_credentials};
pub use redact::{RedactStream, Redactor, RedactorCache};
pub use secret::{REDACTED, Secret};
pub use spec::{SecretSource, SecretSpec, valid_name};
pub use store::{MAX_SECRET_BYTES, SecretStore};
