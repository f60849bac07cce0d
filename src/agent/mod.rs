//! Agents: async functions over a stream of events, registered by name, supervised and
//! restarted on failure, with a per-agent error policy.

pub mod backoff;
pub mod context;
pub mod coordinator;
pub mod env;
pub mod policy;
pub mod registry;
pub(crate) mod runner;
pub(crate) mod source;
pub mod stages;
pub mod status;
pub(crate) mod supervisor;

pub use context::{AgentContext, SendError};
pub use coordinator::{Coordinator, TransactionalSource};
pub use env::AgentEnv;
pub use policy::headers as dead_letter_headers;
pub use registry::{AgentFn, AgentRegistration, AgentRegistry, AgentResult, RawKey, Stage};
pub use stages::declare_stages;
pub use status::{AgentState, AgentStatus, StatusSnapshot};
