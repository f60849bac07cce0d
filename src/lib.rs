//! cta-stream: a Faust-style stream-processing runtime on Kafka.
//!
//! Agents are async functions over typed streams of events, registered by name with
//! [`register_agent!`] and bound to sources (topics, a regex pattern or a timer) in
//! `settings.toml`. The runtime supervises them, acks each event when its agent is done
//! with it and the records it produced are delivered, commits contiguous acked offsets,
//! and applies a per-agent error policy (`fail`, `skip`, `dead-letter`).
//!
//! The runtime knows nothing of any particular application.

pub mod agent;
pub mod app;
pub mod cli;
pub mod codec;
pub mod connectors;
pub mod http;
pub mod kafka;
pub mod ksql;
pub mod liveness;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod services;
pub mod settings;
pub mod stream;
pub mod table;
pub mod testing;
pub mod transactions;
pub mod web;
pub mod worker;

pub use app::App;
pub use settings::Settings;

/// Re-exported so that `register_agent!` works without a dependency of its own.
pub use inventory;

/// What an agent file needs.
pub mod prelude {
    pub use crate::agent::{AgentContext, AgentFn, AgentResult};
    pub use crate::register_agent;
    pub use crate::register_table;
    pub use crate::stream::{Channel, Event, EventStream, Stream, Tick};
    pub use crate::table::{JoinTable, Table};
    pub use anyhow::{anyhow, bail, Context as _};
    pub use serde::{Deserialize, Serialize};
}
