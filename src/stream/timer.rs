//! Timer sources: an agent whose source is `timer = "5s"` receives a `Tick` per interval,
//! one whose source is `cron = "0 * * * *"` a `Tick` at each time the schedule names (in
//! its time zone). With `on_leader = true` either fires on the app's leader only
//! ([`super::leadership`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::event::{Headers, RawEvent};
use super::leadership::{Claim, LeaderState, Leadership};
use crate::settings::{parse_cron, Schedule, TimerSpec};

/// One firing of a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// 0 for the first firing of this timer in this process, then 1, 2, ... (skipped
    /// firings are not numbered).
    pub n: u64,
    /// Wall-clock time of the firing, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The firing's number across the app: for an `on_leader` timer it goes on from the
    /// previous leader's last firing (and across restarts of the app), never repeats and
    /// never goes back; a leader that died between recording a number and firing leaves
    /// a gap. For other timers it equals `n`.
    #[serde(default)]
    pub seq: u64,
    /// A cron firing's scheduled time (ms since the epoch); `at_ms` is when it fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_ms: Option<i64>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where timers read the wall-clock time. A worker reads the system's; the test driver
/// a virtual one that moves with tokio's paused clock, so that a cron schedule fires as
/// the test advances time.
#[derive(Debug, Clone, Copy)]
pub enum WallClock {
    System,
    /// `anchor_ms` at tokio's `anchor`, moving with tokio's clock from there.
    Virtual {
        anchor_ms: i64,
        anchor: tokio::time::Instant,
    },
}

impl WallClock {
    /// A virtual clock that reads `at_ms` now.
    pub fn virtual_at(at_ms: i64) -> Self {
        WallClock::Virtual {
            anchor_ms: at_ms,
            anchor: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            WallClock::System => now_ms(),
            WallClock::Virtual { anchor_ms, anchor } => {
                anchor_ms + anchor.elapsed().as_millis() as i64
            }
        }
    }

    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
    }
}

/// When the feed fires next.
enum Plan {
    Every {
        every: Duration,
        /// Started at the first wait (for an `on_leader` timer: when leadership begins).
        interval: Option<tokio::time::Interval>,
    },
    Cron {
        cron: Box<croner::Cron>,
        timezone: chrono_tz::Tz,
        /// The last scheduled time fired (or skipped).
        last: Option<DateTime<Utc>>,
    },
}

/// The longest sleep before the wall clock is read again: a cron timer follows changes
/// of the system clock (and its drift from the monotonic one) within this.
const RECHECK: Duration = Duration::from_secs(60);

impl Plan {
    /// Forgets the schedule's progress: an interval starts afresh (a new leader's first
    /// tick comes one interval after it took over).
    fn reset(&mut self) {
        if let Plan::Every { interval, .. } = self {
            *interval = None;
        }
    }

    /// Waits for the next firing; its scheduled time for a cron schedule.
    async fn due(&mut self, clock: &WallClock) -> Option<i64> {
        match self {
            Plan::Every { every, interval } => {
                let every = *every;
                let i = interval.get_or_insert_with(|| {
                    let mut i =
                        tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                    // A slow tick does not cause a burst of catch-up ticks.
                    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    i
                });
                i.tick().await;
                None
            }
            Plan::Cron {
                cron,
                timezone,
                last,
            } => {
                let now = clock.now();
                // From the last firing, unless it is past (a slow agent, a paused
                // process): missed times are skipped, not fired in a burst. The search
                // is on real instants, so a repeated hour (DST) is crossed in order.
                let from = match *last {
                    Some(l) if l > now => l,
                    _ => now,
                };
                let next = match cron.find_next_occurrence(&from.with_timezone(timezone), false) {
                    Ok(t) => t.with_timezone(&Utc),
                    Err(e) => {
                        tracing::error!(pattern = %cron.pattern, "the cron schedule fires no more: {e}");
                        std::future::pending::<()>().await;
                        unreachable!("pending never completes")
                    }
                };
                loop {
                    let left = (next - clock.now()).to_std().unwrap_or(Duration::ZERO);
                    if left.is_zero() {
                        break;
                    }
                    tokio::time::sleep(left.min(RECHECK)).await;
                }
                *last = Some(next);
                Some(next.timestamp_millis())
            }
        }
    }
}

/// The feed of a timer agent: a `Tick` per firing.
pub(crate) struct TimerFeed {
    plan: Plan,
    clock: WallClock,
    leader: Option<(Arc<dyn Leadership>, watch::Receiver<LeaderState>)>,
    /// The firing the agent has in hand (an `on_leader` timer's claim).
    held: Option<Claim>,
    next: u64,
    agent: Arc<str>,
    name: Arc<str>,
}

impl TimerFeed {
    pub fn new(
        agent: &str,
        spec: &TimerSpec,
        clock: WallClock,
        leader: Option<Arc<dyn Leadership>>,
    ) -> Result<Self, String> {
        let plan = match &spec.schedule {
            Schedule::Every(every) => Plan::Every {
                every: *every,
                interval: None,
            },
            Schedule::Cron { expr, timezone } => Plan::Cron {
                cron: Box::new(parse_cron(expr)?),
                timezone: *timezone,
                last: None,
            },
        };
        let leader = match (spec.on_leader, leader) {
            (false, _) => None,
            (true, Some(l)) => {
                let rx = l.watch();
                Some((l, rx))
            }
            (true, None) => {
                return Err(
                    "the timer fires on the leader, and this worker has no leadership".into(),
                )
            }
        };
        Ok(Self {
            plan,
            clock,
            leader,
            held: None,
            next: 0,
            agent: Arc::from(agent),
            name: Arc::from(format!("timer:{agent}")),
        })
    }

    /// Waits for the next firing and returns it as the event the agent receives. Asking
    /// for it means the agent is done with the previous one.
    pub async fn fire(&mut self) -> RawEvent {
        self.held = None;
        loop {
            let scheduled_ms = match &mut self.leader {
                None => self.plan.due(&self.clock).await,
                Some((_, rx)) => {
                    if !rx.borrow_and_update().leader {
                        self.plan.reset();
                        until(rx, true).await;
                    }
                    tokio::select! {
                        due = self.plan.due(&self.clock) => due,
                        _ = until(rx, false) => continue,
                    }
                }
            };
            let (seq, claim) = match &self.leader {
                None => (self.next, None),
                Some((l, _)) => match l.claim(&self.agent).await {
                    Some(c) if tokio::time::Instant::now() < c.valid_until => (c.seq, Some(c)),
                    Some(c) => {
                        // Paused between the claim and now: another worker may lead
                        // by now. The number stays unused.
                        tracing::warn!(agent = %self.agent, seq = c.seq, "a timer firing came too late to be sure of the leadership; skipped");
                        continue;
                    }
                    None => {
                        tracing::info!(agent = %self.agent, "a timer firing could not be recorded as the leader's; skipped");
                        continue;
                    }
                },
            };
            let tick = Tick {
                n: self.next,
                at_ms: self.clock.now_ms(),
                seq,
                scheduled_ms,
            };
            self.next += 1;
            self.held = claim;
            return RawEvent {
                key: None,
                value: Some(Bytes::from(
                    serde_json::to_vec(&tick).expect("tick serializes"),
                )),
                topic: self.name.clone(),
                partition: -1,
                offset: tick.seq as i64,
                timestamp: Some(tick.at_ms),
                headers: Headers::default(),
            };
        }
    }
}

/// Waits until the leadership is `leader`; forever once it can no longer change.
async fn until(rx: &mut watch::Receiver<LeaderState>, leader: bool) {
    if rx.wait_for(|s| s.leader == leader).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The next `k` firings of `expr` in `zone` after `from`, as UTC RFC 3339.
    fn firings(expr: &str, zone: &str, from: &str, k: usize) -> Vec<String> {
        let cron = parse_cron(expr).unwrap();
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let mut t = at(from).with_timezone(&tz);
        let mut out = Vec::new();
        for _ in 0..k {
            t = cron.find_next_occurrence(&t, false).unwrap();
            out.push(
                t.with_timezone(&Utc)
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
            );
        }
        out
    }

    #[test]
    fn an_hourly_schedule_follows_chicago_across_the_spring_change() {
        // 2026-03-08 02:00 CST becomes 03:00 CDT: the hour 02:00 does not exist.
        assert_eq!(
            firings("0 * * * *", "America/Chicago", "2026-03-08T06:30:00Z", 3),
            [
                "2026-03-08T07:00:00Z", // 01:00 CST
                "2026-03-08T08:00:00Z", // 03:00 CDT: one real hour later
                "2026-03-08T09:00:00Z", // 04:00 CDT
            ]
        );
        // A fixed time in the gap fires once, at the first time after it.
        assert_eq!(
            firings("30 2 * * *", "America/Chicago", "2026-03-07T06:00:00Z", 3),
            [
                "2026-03-07T08:30:00Z", // 02:30 CST
                "2026-03-08T08:00:00Z", // no 02:30: 03:00 CDT
                "2026-03-09T07:30:00Z", // 02:30 CDT
            ]
        );
    }

    #[test]
    fn a_daily_time_keeps_its_local_time_across_the_autumn_change() {
        // 2026-11-01 02:00 CDT becomes 01:00 CST: 01:30 occurs twice and fires once; an
        // 08:00 job stays at 08:00 local, an hour later in UTC.
        assert_eq!(
            firings("30 1 * * *", "America/Chicago", "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T06:30:00Z", "2026-11-02T07:30:00Z"]
        );
        assert_eq!(
            firings("0 8 * * *", "America/Chicago", "2026-10-31T12:00:00Z", 2),
            ["2026-10-31T13:00:00Z", "2026-11-01T14:00:00Z"]
        );
        // In UTC nothing moves.
        assert_eq!(
            firings("0 8 * * *", "UTC", "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T08:00:00Z", "2026-11-02T08:00:00Z"]
        );
    }

    #[test]
    fn every_minute_of_the_repeated_hour_fires_twice_in_real_time() {
        // Each wall-clock match of `*/30` in the repeated hour fires, in real time order.
        assert_eq!(
            firings("*/30 * * * *", "America/Chicago", "2026-11-01T05:45:00Z", 5),
            [
                "2026-11-01T06:00:00Z", // 01:00 CDT
                "2026-11-01T06:30:00Z", // 01:30 CDT
                "2026-11-01T07:00:00Z", // 01:00 CST
                "2026-11-01T07:30:00Z", // 01:30 CST
                "2026-11-01T08:00:00Z", // 02:00 CST
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cron_feed_fires_at_its_times_on_a_virtual_clock() {
        let start = Utc.with_ymd_and_hms(2026, 3, 8, 6, 59, 0).unwrap();
        let spec = TimerSpec {
            schedule: Schedule::Cron {
                expr: "0 * * * *".into(),
                timezone: chrono_tz::America::Chicago,
            },
            on_leader: false,
        };
        let clock = WallClock::virtual_at(start.timestamp_millis());
        let mut feed = TimerFeed::new("c", &spec, clock, None).unwrap();
        let mut ticks = Vec::new();
        for _ in 0..2 {
            let raw = feed.fire().await;
            ticks.push(serde_json::from_slice::<Tick>(raw.value.as_deref().unwrap()).unwrap());
        }
        assert_eq!(
            ticks.iter().map(|t| (t.n, t.seq)).collect::<Vec<_>>(),
            [(0, 0), (1, 1)]
        );
        let scheduled: Vec<i64> = ticks.iter().map(|t| t.scheduled_ms.unwrap()).collect();
        assert_eq!(
            scheduled,
            [
                at("2026-03-08T07:00:00Z").timestamp_millis(),
                at("2026-03-08T08:00:00Z").timestamp_millis()
            ]
        );
        assert!(ticks.iter().all(
            |t| t.at_ms >= t.scheduled_ms.unwrap() && t.at_ms - t.scheduled_ms.unwrap() < 1_000
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_on_leader_timer_fires_only_while_leader() {
        use super::super::leadership::{InFlight, LeaderState};
        use async_trait::async_trait;

        /// A leadership switched by the test; claims numbered from 100.
        struct Switch {
            state: watch::Sender<LeaderState>,
            seq: std::sync::Mutex<u64>,
            held: InFlight,
        }
        #[async_trait]
        impl Leadership for Switch {
            fn watch(&self) -> watch::Receiver<LeaderState> {
                self.state.subscribe()
            }
            async fn claim(&self, _: &str) -> Option<Claim> {
                if !self.state.borrow().leader {
                    return None;
                }
                let mut s = self.seq.lock().unwrap();
                *s += 1;
                let until = tokio::time::Instant::now() + Duration::from_secs(1);
                Some(Claim::new(*s, until, self.held.hold()))
            }
        }
        let l = Arc::new(Switch {
            state: watch::Sender::new(LeaderState::now(false)),
            seq: std::sync::Mutex::new(99),
            held: InFlight::default(),
        });
        let spec = TimerSpec {
            schedule: Schedule::Every(Duration::from_secs(1)),
            on_leader: true,
        };
        let mut feed =
            TimerFeed::new("t", &spec, WallClock::virtual_at(0), Some(l.clone())).unwrap();
        // Not the leader: nothing for ten seconds.
        let idle = tokio::time::timeout(Duration::from_secs(10), feed.fire()).await;
        assert!(idle.is_err(), "fired without the leadership");
        l.state.send_replace(LeaderState::now(true));
        let started = tokio::time::Instant::now();
        let raw = feed.fire().await;
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "one interval after the take-over"
        );
        let tick: Tick = serde_json::from_slice(raw.value.as_deref().unwrap()).unwrap();
        assert_eq!((tick.n, tick.seq, raw.offset), (0, 100, 100));
        assert_eq!(l.held.count(), 1, "the agent has the firing in hand");
        l.state.send_replace(LeaderState::now(false));
        let idle = tokio::time::timeout(Duration::from_secs(10), feed.fire()).await;
        assert!(idle.is_err(), "fired after losing the leadership");
        assert_eq!(
            l.held.count(),
            0,
            "asking for the next firing let go of the last"
        );
        // Not TimerFeed::new's business to accept an on_leader timer without leadership.
        assert!(TimerFeed::new("t", &spec, WallClock::System, None).is_err());
    }
}
