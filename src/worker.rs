//! The running worker's shared state: what the web endpoints, the liveness monitor and
//! the start-up phases read. Agents see only their part of it, the [`AgentEnv`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::agent::{AgentEnv, AgentStatus};
use crate::codec::CodecCache;
use crate::kafka::{BrokerHealth, SharedProducer};
use crate::settings::Settings;
use crate::table::TableManager;
use crate::transactions::Transactions;

/// What agents and endpoints share in a running worker.
pub struct WorkerState {
    pub settings: Arc<Settings>,
    pub producer: SharedProducer,
    pub codecs: Arc<CodecCache>,
    pub broker: BrokerHealth,
    pub agents: BTreeMap<String, Arc<AgentStatus>>,
    pub tables: Arc<TableManager>,
    /// The exactly-once coordinator, when `processing_guarantee = "exactly_once"`.
    pub transactions: Option<Arc<Transactions>>,
    pub started: Instant,
    /// What the agents share (the same settings, producer, codecs and tables).
    pub env: Arc<AgentEnv>,
    /// The last minute of the agents' counters, for `/performance`.
    pub performance: crate::metrics::window::Window,
    /// What the worker is still doing before it runs its agents (`None`: running).
    pub starting: std::sync::Mutex<Option<String>>,
}

impl WorkerState {
    pub fn set_starting(&self, what: Option<String>) {
        *self.starting.lock().unwrap_or_else(|p| p.into_inner()) = what;
    }

    pub fn starting(&self) -> Option<String> {
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
