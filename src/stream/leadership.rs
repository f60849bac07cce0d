//! The app's leadership, as an `on_leader` timer sees it: whether this worker is the one
//! worker of the app that fires such timers, and the numbers of their firings. The Kafka
//! layer elects the leader among the workers (`kafka::leader`); the test driver's single
//! worker is always the leader ([`SoleLeader`]).
//!
//! A firing is *claimed* before it is handed to the agent: the leader records its sequence
//! number where the next leader will read it, and only a confirmed claim fires. A claim is
//! valid for a short while only ([`Claim::valid_until`]): a leader that was paused between
//! its claim and the firing (a stopped process, a long GC-like stall) may have lost its
//! leadership meanwhile, so it does not fire then.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

/// Whether this worker is the app's leader, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeaderState {
    pub leader: bool,
    /// Milliseconds since the Unix epoch when this worker became, or stopped being, the
    /// leader (or started without being it).
    pub since_ms: i64,
}

impl LeaderState {
    pub fn now(leader: bool) -> Self {
        Self {
            leader,
            since_ms: super::timer::now_ms(),
        }
    }
}

/// A firing of an `on_leader` timer that the leader recorded: its number, and until when
/// it may still be handed to the agent. Dropping it tells the leadership that the agent is
/// done with the firing (a leader giving up waits for that before it leaves).
#[derive(Debug)]
pub struct Claim {
    pub seq: u64,
    pub valid_until: Instant,
    _held: InFlightGuard,
}

impl Claim {
    pub fn new(seq: u64, valid_until: Instant, held: InFlightGuard) -> Self {
        Self {
            seq,
            valid_until,
            _held: held,
        }
    }
}

/// What an `on_leader` timer needs of the app's leadership.
#[async_trait]
pub trait Leadership: Send + Sync {
    /// The leadership as it changes.
    fn watch(&self) -> watch::Receiver<LeaderState>;
    /// The next firing of `timer`, recorded so that no leader fires that number again;
    /// `None` when this worker is not (or no longer) the leader, or the record failed.
    async fn claim(&self, timer: &str) -> Option<Claim>;
    /// Stops competing for leadership (shutdown, once the timers stopped): another
    /// worker takes over at once.
    async fn resign(&self) {}
}

/// Firings handed to agents and not yet done with.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn hold(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Blocks (a thread, not a task) until no firing is in flight or `timeout` passed;
    /// whether none is.
    pub fn wait_idle_blocking(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.count() > 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

#[derive(Debug)]
pub struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The leadership of an app with one worker (the test driver): always the leader, the
/// firings numbered in memory. Kept across the driver's simulated crashes, as the Kafka
/// leadership's numbers are kept across workers.
pub struct SoleLeader {
    state: watch::Sender<LeaderState>,
    seqs: Mutex<BTreeMap<String, u64>>,
    in_flight: InFlight,
}

impl Default for SoleLeader {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(LeaderState::now(true)),
            seqs: Mutex::default(),
            in_flight: InFlight::default(),
        }
    }
}

#[async_trait]
impl Leadership for SoleLeader {
    fn watch(&self) -> watch::Receiver<LeaderState> {
        self.state.subscribe()
    }

    async fn claim(&self, timer: &str) -> Option<Claim> {
        let mut seqs = self.seqs.lock().unwrap_or_else(|p| p.into_inner());
        let seq = match seqs.get(timer) {
            Some(last) => last + 1,
            None => 0,
        };
        seqs.insert(timer.to_string(), seq);
        // Nobody else can lead: the claim never runs out (a day is forever in a test).
        let until = Instant::now() + Duration::from_secs(86_400);
        Some(Claim::new(seq, until, self.in_flight.hold()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sole_leader_numbers_each_timer_from_zero() {
        let l = SoleLeader::default();
        assert!(l.watch().borrow().leader);
        let a0 = l.claim("a").await.unwrap();
        let a1 = l.claim("a").await.unwrap();
        let b0 = l.claim("b").await.unwrap();
        assert_eq!((a0.seq, a1.seq, b0.seq), (0, 1, 0));
        assert_eq!(l.in_flight.count(), 3);
        drop((a0, a1));
        assert_eq!(l.in_flight.count(), 1);
        assert!(!l.in_flight.wait_idle_blocking(Duration::from_millis(20)));
        drop(b0);
        assert!(l.in_flight.wait_idle_blocking(Duration::from_millis(20)));
    }
}
