//! Timer sources: an agent whose source is `timer = "5s"` receives a `Tick` per interval.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::event::{Headers, RawEvent};

/// One firing of a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// 0 for the first firing, then 1, 2, ... (skipped firings are not numbered).
    pub n: u64,
    /// Wall-clock time of the firing, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The feed of a timer agent: a `Tick` per interval.
pub(crate) struct TimerFeed {
    interval: tokio::time::Interval,
    next: u64,
    name: Arc<str>,
}

impl TimerFeed {
    pub fn every(agent: &str, every: Duration) -> Self {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // A slow tick does not cause a burst of catch-up ticks.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Self {
            interval,
            next: 0,
            name: Arc::from(format!("timer:{agent}")),
        }
    }

    /// Waits for the next firing and returns it as the event the agent receives.
    pub async fn fire(&mut self) -> RawEvent {
        self.interval.tick().await;
        let tick = Tick {
            n: self.next,
            at_ms: now_ms(),
        };
        self.next += 1;
        RawEvent {
            key: None,
            value: Some(Bytes::from(
                serde_json::to_vec(&tick).expect("tick serializes"),
            )),
            topic: self.name.clone(),
            partition: -1,
            offset: tick.n as i64,
            timestamp: Some(tick.at_ms),
            headers: Headers::default(),
        }
    }
}
