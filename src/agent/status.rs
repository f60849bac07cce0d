//! What each agent is doing, for `/health`, `/agents` and the logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Starting,
    Running,
    /// Failed and waiting out its backoff before the next restart.
    Failing,
    Stopped,
    Disabled,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailureRecord {
    pub error: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

/// Live status and counters of one agent (all its instances).
#[derive(Debug)]
pub struct AgentStatus {
    pub name: String,
    state: Mutex<(AgentState, SystemTime)>,
    last_failure: Mutex<Option<FailureRecord>>,
    pub events_in: AtomicU64,
    pub events_out: AtomicU64,
    pub skipped: AtomicU64,
    /// Events the agent chose to leave out (`ctx.filtered()`), not errors.
    pub filtered: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub failures: AtomicU64,
    pub restarts: AtomicU64,
    pub delivery_errors: AtomicU64,
    pub rewinds: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusSnapshot {
    pub state: AgentState,
    pub since_secs: u64,
    pub healthy: bool,
    pub events_in: u64,
    pub events_out: u64,
    pub skipped: u64,
    pub filtered: u64,
    pub dead_lettered: u64,
    pub failures: u64,
    pub restarts: u64,
    pub delivery_errors: u64,
    pub rewinds: u64,
    pub last_failure: Option<FailureRecord>,
}

impl AgentStatus {
    pub fn new(name: &str, enabled: bool) -> Self {
        let state = if enabled {
            AgentState::Starting
        } else {
            AgentState::Disabled
        };
        Self {
            name: name.to_string(),
            state: Mutex::new((state, SystemTime::now())),
            last_failure: Mutex::new(None),
            events_in: AtomicU64::new(0),
            events_out: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            delivery_errors: AtomicU64::new(0),
            rewinds: AtomicU64::new(0),
        }
    }

    pub fn set_state(&self, s: AgentState) {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 != s {
            *g = (s, SystemTime::now());
        }
    }

    pub fn state(&self) -> AgentState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    pub fn record_failure(&self, error: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(FailureRecord { error, at });
    }

    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Healthy unless failing or stopped unexpectedly.
    pub fn is_healthy(&self) -> bool {
        matches!(
            self.state(),
            AgentState::Starting | AgentState::Running | AgentState::Disabled
        )
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let (state, since) = *self.state.lock().unwrap_or_else(|p| p.into_inner());
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatusSnapshot {
            state,
            since_secs: since.elapsed().unwrap_or(Duration::ZERO).as_secs(),
            healthy: self.is_healthy(),
            events_in: load(&self.events_in),
            events_out: load(&self.events_out),
            skipped: load(&self.skipped),
            filtered: load(&self.filtered),
            dead_lettered: load(&self.dead_lettered),
            failures: load(&self.failures),
            restarts: load(&self.restarts),
            delivery_errors: load(&self.delivery_errors),
            rewinds: load(&self.rewinds),
            last_failure: self
                .last_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
