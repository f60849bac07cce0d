//! A budget for log lines that can fire once per record (a dead-lettered event, a failed
//! delivery, a consumer error on every poll): a backlog of bad records must not make the
//! log unreadable, and no count may be lost.
//!
//! Per cause, the first [`BURST`] lines are logged in full; after that the lines are only
//! counted, and at most one summary per [`INTERVAL`] says how many were left out, how
//! many since the flood began, and shows the last one. A pending count is summarized at
//! the next event after its interval, at the next tick (every [`TICK`]) or when the
//! throttle is flushed or dropped (shutdown). A cause quiet for [`QUIET`] gets its full
//! lines back. The throttle only decides what is written: the callers count every record
//! in their metrics before asking it, and nothing waits on it but a short lock.
//!
//! A cause is what the caller says (agent, what happened, failure kind) plus the shape of
//! the error's text (its first characters with numbers and quoted values blanked), so
//! that two different errors each show their first lines. At most [`MAX_CAUSES`] are
//! kept per throttle; past that, new shapes share one cause per caller's cause.
//!
//! [`LogThrottle`] is the logic, with the clock passed in (tested without sleeping);
//! [`Throttled`] wraps it for a call site: a lock, `Instant::now()`, a ticking task and a
//! [`LogSite`] that writes the summaries.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Full lines per cause before summaries take over: enough to read the error and see a
/// few offsets (one bad record, or all of them?), few enough to stay on one screen.
pub const BURST: u32 = 5;
/// At most one summary per cause this often while it keeps happening: a flood costs six
/// lines a minute, and the terminal is never more than this far behind the metrics.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// A cause not seen for this long gets its full lines back: a new incident is shown in
/// full, while a flood with short pauses (a slow producer, a rebalance) stays summarized.
pub const QUIET: Duration = Duration::from_secs(60);
/// Causes tracked per throttle (one agent's error handler, one consumer loop): room for
/// every kind of event times a handful of different errors. Free-form error texts (an id
/// in a message) cannot grow the map past it; the extra shapes share one cause.
pub const MAX_CAUSES: usize = 16;
/// How often pending summaries are looked at: a flood that stops is summarized at most
/// `INTERVAL + TICK` after its first left-out line.
pub const TICK: Duration = Duration::from_secs(1);
/// What the last full line of a cause adds, so that the silence after it is explained.
pub const LAST_FULL_NOTE: &str = " (more like this are counted and summarized every 10 s)";

/// Characters of an error's text that make its shape.
const SHAPE_CHARS: usize = 80;

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it in full; `last` on the last full line before summaries take over (see
    /// [`Verdict::note`]).
    Full { last: bool },
    /// Counted for the next summary: do not log it.
    Suppressed,
}

impl Verdict {
    pub fn is_full(self) -> bool {
        matches!(self, Verdict::Full { .. })
    }

    /// What to append to a full line: [`LAST_FULL_NOTE`] on the last one, else nothing.
    pub fn note(self) -> &'static str {
        match self {
            Verdict::Full { last: true } => LAST_FULL_NOTE,
            _ => "",
        }
    }
}

/// Lines of one cause that were left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<C, E> {
    pub cause: C,
    /// Left out since the previous summary.
    pub suppressed: u64,
    /// Left out since the full lines ran out (this flood).
    pub total: u64,
    /// The time `suppressed` were counted over.
    pub over: Duration,
    /// The last one left out.
    pub last: E,
}

impl<C, E> Summary<C, E> {
    /// `"12 more in the last 10 s (99995 since the last full line)"`.
    pub fn counts(&self) -> String {
        format!(
            "{} more in the last {} s ({} since the last full line)",
            self.suppressed,
            self.over.as_secs_f64().round() as u64,
            self.total
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key<C> {
    cause: C,
    /// None: any shape, once the map is full.
    shape: Option<u64>,
}

#[derive(Debug)]
struct Entry<E> {
    full_left: u32,
    last_seen: Instant,
    /// The first line left out since the last summary.
    window: Option<Instant>,
    suppressed: u64,
    total: u64,
    last: Option<E>,
}

impl<E> Entry<E> {
    fn summary<C>(&mut self, cause: &C, now: Instant) -> Option<Summary<C, E>>
    where
        C: Clone,
    {
        let last = self.last.take()?;
        let over = now.saturating_duration_since(self.window.take().unwrap_or(now));
        let s = Summary {
            cause: cause.clone(),
            suppressed: std::mem::take(&mut self.suppressed),
            total: self.total,
            over,
            last,
        };
        Some(s)
    }
}

/// The throttle's logic, with the clock passed in.
#[derive(Debug)]
pub struct LogThrottle<C, E> {
    burst: u32,
    interval: Duration,
    quiet: Duration,
    max_causes: usize,
    entries: HashMap<Key<C>, Entry<E>>,
}

impl<C: Clone + Eq + Hash, E> Default for LogThrottle<C, E> {
    fn default() -> Self {
        Self::with_limits(BURST, INTERVAL, QUIET, MAX_CAUSES)
    }
}

impl<C: Clone + Eq + Hash, E> LogThrottle<C, E> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(burst: u32, interval: Duration, quiet: Duration, max_causes: usize) -> Self {
        Self {
            burst,
            interval,
            quiet,
            max_causes: max_causes.max(1),
            entries: HashMap::new(),
        }
    }

    /// Causes currently tracked.
    pub fn causes(&self) -> usize {
        self.entries.len()
    }

    /// One more line of `cause` with `error`'s text, at `now`. `example` (the line's
    /// particulars) is called only when the line is left out, to be shown by the summary.
    /// The summary returned, if any, is due now and goes before the line.
    pub fn hit(
        &mut self,
        cause: C,
        error: &str,
        now: Instant,
        example: impl FnOnce() -> E,
    ) -> (Verdict, Option<Summary<C, E>>) {
        let mut key = Key {
            cause,
            shape: Some(shape(error)),
        };
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_causes {
            self.forget_quiet(now);
            if self.entries.len() >= self.max_causes {
                key.shape = None;
            }
        }
        let burst = self.burst;
        let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            full_left: burst,
            last_seen: now,
            window: None,
            suppressed: 0,
            total: 0,
            last: None,
        });
        let mut due = None;
        if now.saturating_duration_since(entry.last_seen) >= self.quiet {
            // A new incident: whatever is still pending of the old one goes first.
            due = entry.summary(&key.cause, now);
            entry.full_left = burst;
            entry.total = 0;
        }
        entry.last_seen = now;
        if entry.full_left > 0 {
            entry.full_left -= 1;
            return (
                Verdict::Full {
                    last: entry.full_left == 0,
                },
                due,
            );
        }
        entry.suppressed += 1;
        entry.total += 1;
        entry.last = Some(example());
        let since = *entry.window.get_or_insert(now);
        if due.is_none() && now.saturating_duration_since(since) >= self.interval {
            due = entry.summary(&key.cause, now);
        }
        (Verdict::Suppressed, due)
    }

    /// The summaries due at `now` (their interval is over); forgets causes quiet for
    /// long enough, which gives them their full lines back.
    pub fn due(&mut self, now: Instant) -> Vec<Summary<C, E>> {
        let interval = self.interval;
        let mut out = Vec::new();
        for (key, entry) in self.entries.iter_mut() {
            if entry
                .window
                .is_some_and(|w| now.saturating_duration_since(w) >= interval)
            {
                out.extend(entry.summary(&key.cause, now));
            }
        }
        self.forget_quiet(now);
        out
    }

    /// Every pending summary, due or not (at shutdown).
    pub fn drain(&mut self, now: Instant) -> Vec<Summary<C, E>> {
        self.entries
            .iter_mut()
            .filter_map(|(key, entry)| entry.summary(&key.cause, now))
            .collect()
    }

    fn forget_quiet(&mut self, now: Instant) {
        let quiet = self.quiet;
        self.entries
            .retain(|_, e| e.suppressed > 0 || now.saturating_duration_since(e.last_seen) < quiet);
    }
}

/// A hash of the first characters of `text` with every run of digits and every quoted
/// value blanked: "schema id 4 is not in the registry" and "schema id 7 …" are one shape.
pub fn shape(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    let mut quote: Option<char> = None;
    let mut in_digits = false;
    for c in text.chars().take(SHAPE_CHARS) {
        if let Some(q) = quote {
            if c == q {
                quote = None;
                c.hash(&mut h);
            }
            continue;
        }
        if c.is_ascii_digit() {
            if !in_digits {
                '#'.hash(&mut h);
            }
            in_digits = true;
            continue;
        }
        in_digits = false;
        if matches!(c, '"' | '`') {
            quote = Some(c);
        }
        c.hash(&mut h);
    }
    h.finish()
}

/// Where a throttle's summaries are written.
pub trait LogSite: Send + Sync + 'static {
    type Cause: Clone + Eq + Hash + Send + 'static;
    type Example: Send + 'static;
    fn summarize(&self, summary: Summary<Self::Cause, Self::Example>);
}

/// A [`LogThrottle`] for one call site, shared by its threads, ticked every [`TICK`] by a
/// task while it lives, and flushed when dropped.
pub struct Throttled<S: LogSite> {
    pub site: S,
    state: Mutex<LogThrottle<S::Cause, S::Example>>,
}

impl<S: LogSite> Throttled<S> {
    /// Spawns the ticking task on the current Tokio runtime, if there is one (else pending
    /// summaries wait for the next line or the drop).
    pub fn new(site: S) -> Arc<Self> {
        let t = Arc::new(Self::without_ticker(site));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(tick_while_alive(Arc::downgrade(&t)));
        }
        t
    }

    /// A throttle nothing ticks: the caller calls [`Throttled::tick`] (a loop with a
    /// timer of its own) or relies on the next line and the drop.
    pub fn without_ticker(site: S) -> Self {
        Self {
            site,
            state: Mutex::new(LogThrottle::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogThrottle<S::Cause, S::Example>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more line: see [`LogThrottle::hit`]. A summary due now is written here.
    pub fn hit(
        &self,
        cause: S::Cause,
        error: &str,
        example: impl FnOnce() -> S::Example,
    ) -> Verdict {
        let (verdict, due) = self.lock().hit(cause, error, Instant::now(), example);
        if let Some(s) = due {
            self.site.summarize(s);
        }
        verdict
    }

    /// Writes the summaries that are due.
    pub fn tick(&self) {
        let due = self.lock().due(Instant::now());
        for s in due {
            self.site.summarize(s);
        }
    }

    /// Writes every pending summary.
    pub fn flush(&self) {
        let pending = self.lock().drain(Instant::now());
        for s in pending {
            self.site.summarize(s);
        }
    }
}

impl<S: LogSite> Drop for Throttled<S> {
    fn drop(&mut self) {
        let pending = self
            .state
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(Instant::now());
        for s in pending {
            self.site.summarize(s);
        }
    }
}

async fn tick_while_alive<S: LogSite>(t: Weak<Throttled<S>>) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        match t.upgrade() {
            Some(t) => t.tick(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type T = LogThrottle<&'static str, u64>;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Hits `cause` at `at`, with example `n`.
    fn hit(t: &mut T, cause: &'static str, error: &str, at: Instant, n: u64) -> Verdict {
        let (v, due) = t.hit(cause, error, at, || n);
        assert!(due.is_none(), "unexpected summary at {n}: {due:?}");
        v
    }

    #[test]
    fn the_first_lines_are_full_then_counted() {
        let t0 = Instant::now();
        let mut t = T::new();
        let verdicts: Vec<Verdict> = (0..8).map(|n| hit(&mut t, "dlq", "bad", t0, n)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Full { last: false },
                Verdict::Full { last: false },
                Verdict::Full { last: false },
                Verdict::Full { last: false },
                Verdict::Full { last: true },
                Verdict::Suppressed,
                Verdict::Suppressed,
                Verdict::Suppressed,
            ]
        );
        assert_eq!(verdicts[4].note(), LAST_FULL_NOTE);
        assert_eq!(verdicts[3].note(), "");
        // Nothing is due before the interval is over.
        assert!(t.due(t0 + secs(9)).is_empty());
        let due = t.due(t0 + secs(10));
        assert_eq!(
            due,
            [Summary {
                cause: "dlq",
                suppressed: 3,
                total: 3,
                over: secs(10),
                last: 7
            }]
        );
        // Summarized once: nothing pending any more.
        assert!(t.due(t0 + secs(11)).is_empty());
        assert!(t.drain(t0 + secs(11)).is_empty());
    }

    #[test]
    fn a_flood_gets_one_summary_per_interval_with_its_running_total() {
        let t0 = Instant::now();
        let mut t = T::new();
        let mut summaries = Vec::new();
        let mut full = 0;
        // 100 lines a second for 35 s, ticked every second.
        for ms in (0..35_000u64).step_by(10) {
            let at = t0 + Duration::from_millis(ms);
            let (v, due) = t.hit("dlq", "bad", at, || ms);
            full += u64::from(v.is_full());
            summaries.extend(due);
            if ms % 1000 == 0 {
                summaries.extend(t.due(at));
            }
        }
        // The flood stops; the next ticks write what is pending.
        for s in 35..50 {
            summaries.extend(t.due(t0 + secs(s)));
        }
        assert_eq!(full, u64::from(BURST));
        let counted: u64 = summaries.iter().map(|s| s.suppressed).sum();
        assert_eq!(counted + full, 3500, "every line is either full or counted");
        assert_eq!(summaries.len(), 4, "{summaries:?}");
        for w in summaries.windows(2) {
            assert_eq!(w[1].total, w[0].total + w[1].suppressed);
        }
        let last = summaries.last().unwrap();
        assert_eq!(last.total, 3500 - u64::from(BURST));
        assert_eq!(last.last, 34_990, "the last line left out is shown");
        assert!(summaries.iter().all(|s| s.over >= INTERVAL));
    }

    #[test]
    fn a_pending_count_is_summarized_by_the_next_line_after_the_interval() {
        let t0 = Instant::now();
        let mut t = T::new();
        for n in 0..6 {
            hit(&mut t, "dlq", "bad", t0, n);
        }
        // No tick ran; the next line of the cause, 10 s later, brings the summary.
        let (v, due) = t.hit("dlq", "bad", t0 + secs(10), || 6);
        assert_eq!(v, Verdict::Suppressed);
        let s = due.expect("summary due");
        assert_eq!((s.suppressed, s.total, s.last), (2, 2, 6));
        assert_eq!(
            s.counts(),
            "2 more in the last 10 s (2 since the last full line)"
        );
    }

    #[test]
    fn a_quiet_cause_gets_its_full_lines_back() {
        let t0 = Instant::now();
        let mut t = T::new();
        for n in 0..7 {
            hit(&mut t, "dlq", "bad", t0, n);
        }
        assert_eq!(t.due(t0 + secs(10)).len(), 1);
        // Still seen within QUIET: summarized, not full.
        assert_eq!(
            hit(&mut t, "dlq", "bad", t0 + secs(59), 7),
            Verdict::Suppressed
        );
        assert_eq!(t.due(t0 + secs(69))[0].total, 3);
        // Quiet for QUIET: forgotten by the tick, then full again.
        assert!(t.due(t0 + secs(59) + QUIET).is_empty());
        assert_eq!(t.causes(), 0);
        let again = t0 + secs(200);
        assert_eq!(
            hit(&mut t, "dlq", "bad", again, 8),
            Verdict::Full { last: false }
        );
    }

    #[test]
    fn without_ticks_a_quiet_cause_writes_its_pending_count_before_the_next_full_line() {
        let t0 = Instant::now();
        let mut t = T::new();
        for n in 0..6 {
            hit(&mut t, "dlq", "bad", t0, n);
        }
        let (v, due) = t.hit("dlq", "bad", t0 + QUIET, || 6);
        assert_eq!(v, Verdict::Full { last: false });
        assert_eq!(due.map(|s| (s.suppressed, s.last)), Some((1, 5)));
    }

    #[test]
    fn causes_and_error_shapes_have_budgets_of_their_own() {
        let t0 = Instant::now();
        let mut t = T::new();
        for n in 0..5 {
            hit(&mut t, "dlq", "schema id 4 is not in the registry", t0, n);
        }
        // Another number, same shape: counted with it.
        let v = hit(&mut t, "dlq", "schema id 17 is not in the registry", t0, 5);
        assert_eq!(v, Verdict::Suppressed);
        // Another error, another cause: full lines of their own.
        assert!(hit(&mut t, "dlq", "expected value at line 1 column 1", t0, 6).is_full());
        assert!(hit(&mut t, "skip", "schema id 4 is not in the registry", t0, 7).is_full());
        assert_eq!(t.causes(), 3);
        let mut due = t.drain(t0 + secs(1));
        assert_eq!(due.len(), 1);
        let s = due.pop().unwrap();
        assert_eq!((s.cause, s.suppressed, s.over), ("dlq", 1, secs(1)));
    }

    #[test]
    fn shapes_ignore_numbers_and_quoted_values() {
        assert_eq!(
            shape("offset 12 of \"a\" failed"),
            shape("offset 345 of \"bcd\" failed")
        );
        assert_eq!(shape("at `x1`: 7"), shape("at `y`: 7000"));
        assert_ne!(shape("cannot decode: eof"), shape("cannot decode: bad tag"));
        // Only the start counts: a long text with a varying tail is one shape.
        let a = format!("{} {}", "x".repeat(SHAPE_CHARS), "tail one");
        let b = format!("{} {}", "x".repeat(SHAPE_CHARS), "tail two");
        assert_eq!(shape(&a), shape(&b));
    }

    #[test]
    fn the_number_of_causes_is_bounded() {
        let t0 = Instant::now();
        let mut t = T::new();
        let mut full = 0;
        for n in 0..1000u64 {
            // Every error different in its words, not only its numbers.
            let error = format!("error {}", char::from_u32(0x4e00 + n as u32).unwrap());
            full += u64::from(hit(&mut t, "process", &error, t0, n).is_full());
        }
        assert_eq!(
            t.causes(),
            MAX_CAUSES + 1,
            "the extra shapes share one cause"
        );
        // One full line for each of the first shapes, then the shared cause's burst.
        assert_eq!(full, MAX_CAUSES as u64 + u64::from(BURST));
        let s = t.drain(t0 + secs(1));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].total, 1000 - full);
        assert_eq!(s[0].last, 999);
        // Once the old shapes are quiet, new ones get causes of their own again.
        let later = t0 + QUIET;
        assert!(hit(&mut t, "process", "something new", later, 1).is_full());
        assert_eq!(t.causes(), 1);
    }

    #[test]
    fn the_note_names_the_interval() {
        assert!(LAST_FULL_NOTE.contains(&format!("every {} s", INTERVAL.as_secs())));
    }

    struct Recorder(Arc<Mutex<Vec<Summary<&'static str, u64>>>>);

    impl LogSite for Recorder {
        type Cause = &'static str;
        type Example = u64;
        fn summarize(&self, s: Summary<&'static str, u64>) {
            self.0.lock().unwrap().push(s);
        }
    }

    #[test]
    fn a_shared_throttle_writes_what_is_pending_when_flushed_or_dropped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let t = Throttled::new(Recorder(seen.clone()));
        let full = (0..9)
            .filter(|&n| t.hit("dlq", "bad", || n).is_full())
            .count();
        assert_eq!(full, BURST as usize);
        t.flush();
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(seen.lock().unwrap()[0].suppressed, 4);
        t.hit("dlq", "bad", || 9);
        drop(t);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!((seen[1].suppressed, seen[1].total, seen[1].last), (1, 5, 9));
    }
}
