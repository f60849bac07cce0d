//! Acknowledgement tracking. An event is acked when its agent is done with it and every
//! record it produced has been delivered; the committed offset of a partition only
//! advances over a contiguous run of acked offsets, so a crash never skips an event.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::metrics::histogram::Histogram;

/// Acks of one source partition of one agent.
pub struct PartitionTracker {
    pub topic: Arc<str>,
    pub partition: i32,
    retired: AtomicBool,
    /// Raised when a rewind is requested, so the consumer loop looks without locking.
    attention: Arc<AtomicBool>,
    /// Events dispatched under an older epoch are dropped unprocessed (after a rewind
    /// or a revoke they will be delivered again).
    epoch: AtomicU64,
    state: Mutex<TrackerState>,
    /// Where the time from dispatch to ack of each event is recorded.
    latency: Option<Arc<Histogram>>,
}

#[derive(Default)]
struct TrackerState {
    /// Dispatched offsets in order: (offset, epoch dispatched in, acked).
    pending: VecDeque<(i64, u64, bool)>,
    /// One past the last offset of the contiguous acked run: what may be committed.
    committable: Option<i64>,
    /// What was last handed out for commit.
    committed: Option<i64>,
    /// The first offset dispatched since the partition was assigned: where processing
    /// resumed, so where an aborted transaction sends it back to if nothing was committed.
    base: Option<i64>,
    /// Lowest offset whose processing failed and must be delivered again.
    rewind: Option<(i64, String)>,
}

impl TrackerState {
    fn find(&self, offset: i64, epoch: u64) -> Option<usize> {
        let i = self
            .pending
            .binary_search_by_key(&offset, |(o, _, _)| *o)
            .ok()?;
        (self.pending[i].1 == epoch).then_some(i)
    }
}

/// A rewind the consumer must carry out: seek the partition back to `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewind {
    pub offset: i64,
    pub reason: String,
}

impl PartitionTracker {
    pub fn new(topic: Arc<str>, partition: i32, attention: Arc<AtomicBool>) -> Self {
        Self {
            topic,
            partition,
            attention,
            retired: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            state: Mutex::default(),
            latency: None,
        }
    }

    /// Records each acked event's time from dispatch to ack in `h`.
    pub fn with_latency(mut self, h: Arc<Histogram>) -> Self {
        self.latency = Some(h);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        // A panic while holding this lock cannot leave the queue half-edited, so a
        // poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `offset` was handed to an agent; returns the current epoch.
    pub fn register(&self, offset: i64) -> u64 {
        let mut s = self.lock();
        if let Some(&(last, _, _)) = s.pending.back() {
            debug_assert!(offset > last, "offsets of a partition arrive in order");
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        s.pending.push_back((offset, epoch, false));
        s.base.get_or_insert(offset);
        epoch
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Acks `offset` as dispatched in `epoch`. An ack from an older epoch is ignored: that
    /// event was dropped or will be delivered again, and must not ack its redelivery.
    pub fn done(&self, offset: i64, epoch: u64) {
        let mut s = self.lock();
        if let Some(i) = s.find(offset, epoch) {
            s.pending[i].2 = true;
        }
        while let Some(&(o, _, true)) = s.pending.front() {
            s.pending.pop_front();
            s.committable = Some(o + 1);
        }
    }

    pub fn fail(&self, offset: i64, epoch: u64, reason: String) {
        let mut s = self.lock();
        if s.find(offset, epoch).is_none() {
            return;
        }
        match &s.rewind {
            Some((o, _)) if *o <= offset => {}
            _ => s.rewind = Some((offset, reason)),
        }
        self.attention.store(true, Ordering::Release);
    }

    /// Takes a requested rewind: forgets the offsets from the failed one on and moves to
    /// a new epoch, so events already queued behind it are dropped.
    pub fn take_rewind(&self) -> Option<Rewind> {
        let mut s = self.lock();
        let (offset, reason) = s.rewind.take()?;
        while matches!(s.pending.back(), Some(&(o, _, _)) if o >= offset) {
            s.pending.pop_back();
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        Some(Rewind { offset, reason })
    }

    /// The offset to commit if it moved since the last call.
    pub fn take_committable(&self) -> Option<i64> {
        let mut s = self.lock();
        match s.committable {
            Some(c) if s.committed != Some(c) => {
                s.committed = Some(c);
                Some(c)
            }
            _ => None,
        }
    }

    /// Records that `offset` was committed (in a transaction).
    pub fn set_committed(&self, offset: i64) {
        self.lock().committed = Some(offset);
    }

    /// A transaction was aborted: forget everything processed since the last commit and
    /// return the offset to seek back to (None when nothing was dispatched yet).
    pub fn reset_to_committed(&self) -> Option<i64> {
        let mut s = self.lock();
        let target = s.committed.or(s.base)?;
        s.pending.clear();
        s.committable = s.committed;
        s.rewind = None;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        Some(target)
    }

    /// Where processing of this partition stands: one past the last contiguous ack, or
    /// the first offset dispatched when none is acked yet.
    pub fn position(&self) -> Option<i64> {
        let s = self.lock();
        s.committable.or(s.base)
    }

    /// The offset to commit, whether or not it moved (for final and revoke commits).
    pub fn committable(&self) -> Option<i64> {
        self.lock().committable
    }

    /// Events handed out and not yet acked.
    pub fn in_flight(&self) -> usize {
        self.lock().pending.iter().filter(|(_, _, d)| !d).count()
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// The partition was revoked: queued events are dropped, late acks ignored.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        let mut s = self.lock();
        s.pending.clear();
        s.rewind = None;
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// The ack of one event, or of a batch of events. Clones share it: the event is acked
/// when the last clone drops, which is when the agent moved on and every delivery it
/// attached has completed.
#[derive(Clone)]
pub struct AckToken(Arc<Acked>);

enum Acked {
    One(TokenInner),
    /// A batch (`take`): a record produced for it holds every event of the batch.
    Batch(Vec<AckToken>),
}

struct TokenInner {
    tracker: Arc<PartitionTracker>,
    offset: i64,
    epoch: u64,
    failure: OnceLock<String>,
    forgotten: AtomicBool,
    dispatched: Instant,
}

impl AckToken {
    /// Registers `offset` with the tracker and returns its token.
    pub fn dispatch(tracker: &Arc<PartitionTracker>, offset: i64) -> Self {
        let epoch = tracker.register(offset);
        Self(Arc::new(Acked::One(TokenInner {
            tracker: tracker.clone(),
            offset,
            epoch,
            failure: OnceLock::new(),
            forgotten: AtomicBool::new(false),
            dispatched: Instant::now(),
        })))
    }

    /// One token standing for all of `tokens`: each is acked once this one and its
    /// clones are gone (and each's own clones).
    pub fn batch(mut tokens: Vec<AckToken>) -> Self {
        if tokens.len() == 1 {
            return tokens.pop().expect("one token");
        }
        Self(Arc::new(Acked::Batch(tokens)))
    }

    /// False once the partition was rewound or revoked after this event was dispatched:
    /// the event must then be dropped unprocessed. A batch is current while all its
    /// events are.
    pub fn is_current(&self) -> bool {
        match &*self.0 {
            Acked::One(t) => t.tracker.epoch() == t.epoch,
            Acked::Batch(b) => b.iter().all(AckToken::is_current),
        }
    }

    /// Marks the event failed: instead of being acked it will be delivered again.
    pub fn fail(&self, reason: impl Into<String>) {
        let reason = reason.into();
        match &*self.0 {
            Acked::One(t) => {
                let _ = t.failure.set(reason);
            }
            Acked::Batch(b) => b.iter().for_each(|t| t.fail(reason.clone())),
        }
    }

    /// The event was never processed (dropped from a queue at shutdown): neither ack
    /// nor rewind it; it stays uncommitted and is delivered again after a restart.
    pub fn forget(&self) {
        match &*self.0 {
            Acked::One(t) => t.forgotten.store(true, Ordering::Release),
            Acked::Batch(b) => b.iter().for_each(AckToken::forget),
        }
    }

    /// The event's offset (a batch's first).
    pub fn offset(&self) -> i64 {
        match &*self.0 {
            Acked::One(t) => t.offset,
            Acked::Batch(b) => b.first().map_or(-1, AckToken::offset),
        }
    }
}

impl Drop for TokenInner {
    fn drop(&mut self) {
        if self.forgotten.load(Ordering::Acquire) {
            return;
        }
        match self.failure.take() {
            Some(reason) => self.tracker.fail(self.offset, self.epoch, reason),
            None => {
                self.tracker.done(self.offset, self.epoch);
                if let Some(h) = &self.tracker.latency {
                    h.observe(self.dispatched.elapsed());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Arc<PartitionTracker> {
        Arc::new(PartitionTracker::new("t".into(), 0, Arc::default()))
    }

    #[test]
    fn commit_advances_only_over_contiguous_acks() {
        let t = tracker();
        let toks: Vec<AckToken> = [10, 11, 13, 14]
            .iter()
            .map(|o| AckToken::dispatch(&t, *o))
            .collect();
        let mut toks = toks.into_iter();
        let (t10, t11, t13, t14) = (
            toks.next().unwrap(),
            toks.next().unwrap(),
            toks.next().unwrap(),
            toks.next().unwrap(),
        );
        drop(t11);
        drop(t13);
        assert_eq!(t.take_committable(), None, "10 is not acked yet");
        drop(t10);
        // 12 was never dispatched (compacted away, or a transaction marker): offsets
        // have gaps, and the run 10, 11, 13 is contiguous in dispatch order.
        assert_eq!(t.take_committable(), Some(14));
        drop(t14);
        assert_eq!(t.take_committable(), Some(15));
        assert_eq!(t.take_committable(), None, "unchanged since last take");
    }

    #[test]
    fn tokens_ack_when_the_last_clone_drops() {
        let t = tracker();
        let tok = AckToken::dispatch(&t, 0);
        let delivery = tok.clone();
        drop(tok);
        assert_eq!(t.committable(), None);
        drop(delivery);
        assert_eq!(t.committable(), Some(1));
    }

    #[test]
    fn a_failed_token_requests_a_rewind_and_stale_acks_do_not_count() {
        let attention = Arc::new(AtomicBool::new(false));
        let t = Arc::new(PartitionTracker::new("t".into(), 0, attention.clone()));
        let mut toks: Vec<Option<AckToken>> =
            (0..5).map(|o| Some(AckToken::dispatch(&t, o))).collect();
        toks[0].take();
        let t1 = toks[1].take().unwrap();
        t1.fail("boom");
        drop(t1);
        toks[2].take(); // a later event finished before the rewind was taken
        assert!(attention.load(Ordering::Acquire));
        let r = t.take_rewind().unwrap();
        assert_eq!(
            r,
            Rewind {
                offset: 1,
                reason: "boom".into()
            }
        );
        assert!(
            !toks[3].as_ref().unwrap().is_current(),
            "queued events are stale"
        );
        assert_eq!(t.committable(), Some(1), "never past the failed offset");
        // Redelivered from 1 on; the stale token of 3 drops after 3 is registered again.
        let again: Vec<AckToken> = (1..5).map(|o| AckToken::dispatch(&t, o)).collect();
        toks[3].take();
        toks[4].take();
        let mut again = again.into_iter();
        drop(again.next()); // 1
        drop(again.next()); // 2
        assert_eq!(
            t.committable(),
            Some(3),
            "the stale ack of 3 must not ack its redelivery"
        );
        drop(again);
        assert_eq!(t.committable(), Some(5));
    }

    #[test]
    fn acks_after_retire_are_ignored() {
        let t = tracker();
        let a = AckToken::dispatch(&t, 0);
        let b = AckToken::dispatch(&t, 1);
        t.retire();
        drop(b);
        drop(a);
        assert_eq!(t.committable(), None);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn forgotten_tokens_neither_ack_nor_rewind() {
        let t = tracker();
        let a = AckToken::dispatch(&t, 0);
        a.forget();
        drop(a);
        assert_eq!(t.committable(), None);
        assert_eq!(t.in_flight(), 1);
    }

    #[test]
    fn an_abort_goes_back_to_the_last_commit_or_the_start() {
        let t = tracker();
        assert_eq!(t.reset_to_committed(), None);
        drop(
            (5..8)
                .map(|o| AckToken::dispatch(&t, o))
                .collect::<Vec<_>>(),
        );
        assert_eq!(t.committable(), Some(8));
        assert_eq!(
            t.reset_to_committed(),
            Some(5),
            "nothing committed: back to the start"
        );
        assert_eq!(t.committable(), None);
        drop(
            (5..8)
                .map(|o| AckToken::dispatch(&t, o))
                .collect::<Vec<_>>(),
        );
        t.set_committed(8);
        let late = AckToken::dispatch(&t, 8);
        assert_eq!(t.reset_to_committed(), Some(8));
        assert!(!late.is_current());
        drop(late);
        assert_eq!(t.committable(), Some(8));
    }

    #[test]
    fn a_batch_token_acks_each_event_when_the_batch_and_its_deliveries_are_done() {
        let t = tracker();
        let toks: Vec<AckToken> = (0..3).map(|o| AckToken::dispatch(&t, o)).collect();
        let batch = AckToken::batch(toks);
        let delivery = batch.clone();
        drop(batch);
        assert_eq!(t.committable(), None, "a delivery of the batch is pending");
        drop(delivery);
        assert_eq!(t.committable(), Some(3));
    }

    #[test]
    fn a_failed_batch_rewinds_to_its_first_event() {
        let t = tracker();
        let toks: Vec<AckToken> = (0..3).map(|o| AckToken::dispatch(&t, o)).collect();
        let batch = AckToken::batch(toks);
        batch.fail("boom");
        drop(batch);
        assert_eq!(t.take_rewind().unwrap().offset, 0);
        assert_eq!(t.committable(), None);
    }

    #[test]
    fn lowest_failure_wins() {
        let t = tracker();
        let toks: Vec<AckToken> = (0..3).map(|o| AckToken::dispatch(&t, o)).collect();
        toks[2].fail("late");
        toks[1].fail("early");
        drop(toks);
        assert_eq!(t.take_rewind().unwrap().offset, 1);
        assert_eq!(t.take_rewind(), None);
    }
}
