//! What each agent is doing, for `/health`, `/agents` and the logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::metrics::histogram::Histogram;
use crate::stream::LeaderState;

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
    /// Offset commits sent, and failed (at-least-once; under exactly-once offsets go
    /// with the transactions).
    pub commits: AtomicU64,
    pub commit_failures: AtomicU64,
    /// Rebalances that assigned partitions to the agent, and that revoked some.
    pub assignments: AtomicU64,
    pub revocations: AtomicU64,
    /// Time from the consumer handing an event over to its ack (the agent is done with
    /// it and the records it produced are delivered). Its count is the events acked.
    pub latency: Arc<Histogram>,
    lag: Mutex<Vec<PartitionLag>>,
    /// When the agent last moved (events in, acks, recovery records), and what it had
    /// done then: the watchdog's view of progress.
    progress: Mutex<(u64, Instant)>,
    /// An `on_leader` timer's view of the app's leadership.
    leadership: OnceLock<tokio::sync::watch::Receiver<LeaderState>>,
}

/// How far an agent is behind on one source partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The partition's end for this consumer (the last stable offset under read_committed).
    pub end_offset: i64,
    /// One past the last offset processed and acked (or the committed offset).
    pub position: i64,
    pub lag: i64,
    /// The offset the broker confirmed as committed by this consumer (-1: none yet; under
    /// exactly-once the transactions commit, which the consumer does not see).
    pub committed_offset: i64,
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
    pub acked: u64,
    pub commits: u64,
    pub commit_failures: u64,
    pub assignments: u64,
    pub revocations: u64,
    /// Events waiting on the source partitions (sum of their lag).
    pub lag: i64,
    /// Seconds since the agent last made progress.
    pub idle_secs: u64,
    pub last_failure: Option<FailureRecord>,
    /// An `on_leader` timer: whether this worker is the app's leader, since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderState>,
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
            commits: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            assignments: AtomicU64::new(0),
            revocations: AtomicU64::new(0),
            latency: Arc::default(),
            lag: Mutex::default(),
            progress: Mutex::new((0, Instant::now())),
            leadership: OnceLock::new(),
        }
    }

    /// Shows the app's leadership with the agent (an `on_leader` timer).
    pub fn follow_leadership(&self, rx: tokio::sync::watch::Receiver<LeaderState>) {
        let _ = self.leadership.set(rx);
    }

    pub fn leadership(&self) -> Option<LeaderState> {
        self.leadership.get().map(|rx| *rx.borrow())
    }

    /// Replaces the lag of every source partition (from the consumer's statistics).
    pub fn set_lag(&self, lag: Vec<PartitionLag>) {
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = lag;
    }

    pub fn lag(&self) -> Vec<PartitionLag> {
        self.lag.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn total_lag(&self) -> i64 {
        self.lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|l| l.lag.max(0))
            .sum()
    }

    /// Records `done` (a number that grows while the agent works: events in, acks,
    /// recovery records) and returns for how long it has not moved.
    pub fn note_progress(&self, done: u64) -> Duration {
        let mut g = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 != done {
            *g = (done, Instant::now());
        }
        g.1.elapsed()
    }

    pub fn idle(&self) -> Duration {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .elapsed()
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
            acked: self.latency.snapshot().count(),
            commits: load(&self.commits),
            commit_failures: load(&self.commit_failures),
            assignments: load(&self.assignments),
            revocations: load(&self.revocations),
            lag: self.total_lag(),
            idle_secs: self.idle().as_secs(),
            last_failure: self
                .last_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            leader: self.leadership(),
        }
    }
}

/// The producer counts an agent's failed deliveries through this.
impl crate::kafka::producer::DeliveryObserver for AgentStatus {
    fn name(&self) -> &str {
        &self.name
    }

    fn delivery_failed(&self) {
        AgentStatus::incr(&self.delivery_errors);
    }
}
