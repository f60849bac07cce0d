//! What an agent instance's successive streams share: its feed (kept across restarts),
//! the events in hand, codecs, error handling and the exactly-once commit barrier.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::ack::AckToken;
use super::event::RawEvent;
use super::feed::Feed;
use super::owner::{Disposition, FailureKind, StreamOwner};
use crate::codec::Codec;

/// An event an instance is working on: what the supervisor applies the error policy to
/// when the agent fails.
pub(crate) struct InFlight {
    pub raw: Arc<RawEvent>,
    pub token: Option<AckToken>,
    /// Where the answer goes when the event is a request (`ask`) from a channel.
    pub reply: Option<oneshot::Sender<Result<Bytes, String>>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(format!(
                "the agent finished with request {}@{} without replying",
                self.raw.topic, self.raw.offset
            )));
        }
    }
}

pub struct Port {
    pub(crate) feed: Mutex<Option<Feed>>,
    /// The events in hand: one, or a batch while `take` collects or the agent works on it.
    pub(crate) current: Mutex<Vec<InFlight>>,
    /// Set while a batch is collected: asking for the next event keeps those in hand.
    pub(crate) holding: AtomicBool,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) value_codec: Codec,
    pub(crate) key_codec: Codec,
    /// The agent: its counters and error policy.
    pub(crate) owner: Arc<dyn StreamOwner>,
    /// Under exactly-once: held for reading while an event is processed, so that a
    /// transaction commit always falls between two events.
    pub(crate) barrier: Option<Arc<tokio::sync::RwLock<()>>>,
    pub(crate) guard: Mutex<Option<tokio::sync::OwnedRwLockReadGuard<()>>>,
}

impl Port {
    pub(crate) fn new(
        feed: Feed,
        shutdown: watch::Receiver<bool>,
        value_codec: Codec,
        key_codec: Codec,
        owner: Arc<dyn StreamOwner>,
        barrier: Option<Arc<tokio::sync::RwLock<()>>>,
    ) -> Self {
        Self {
            feed: Mutex::new(Some(feed)),
            current: Mutex::new(Vec::new()),
            holding: AtomicBool::new(false),
            shutdown,
            value_codec,
            key_codec,
            owner,
            barrier,
            guard: Mutex::new(None),
        }
    }

    fn in_hand(&self) -> std::sync::MutexGuard<'_, Vec<InFlight>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the events in hand (dropping them acks them).
    pub(crate) fn take_current(&self) -> Vec<InFlight> {
        std::mem::take(&mut *self.in_hand())
    }

    pub(crate) fn push_current(&self, c: InFlight) {
        self.in_hand().push(c);
    }

    /// Lets go of `raw` alone (the error policy took care of it).
    pub(crate) fn drop_current(&self, raw: &Arc<RawEvent>) {
        let mut hand = self.in_hand();
        if let Some(i) = hand.iter().rposition(|c| Arc::ptr_eq(&c.raw, raw)) {
            drop(hand.remove(i));
        }
    }

    pub(crate) fn is_holding(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }

    pub(crate) fn set_holding(&self, on: bool) {
        self.holding.store(on, Ordering::Release);
    }

    /// Waits for the commit barrier (exactly-once only) before an event is handed out.
    /// While a batch is collected the barrier is already held: taking it again could
    /// wait behind a commit that waits for this very batch.
    pub(crate) async fn enter_event(&self) {
        if let Some(b) = &self.barrier {
            if self
                .guard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
            {
                return;
            }
            let g = b.clone().read_owned().await;
            *self.guard.lock().unwrap_or_else(|p| p.into_inner()) = Some(g);
        }
    }

    /// The agent is done with its events (or failed): a commit may happen.
    pub(crate) fn leave_event(&self) {
        self.guard.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The token a produced record should carry: under exactly-once none, because the
    /// transaction's commit, not each delivery, decides what counts.
    pub(crate) fn delivery_token(&self) -> Option<AckToken> {
        if self.barrier.is_some() {
            None
        } else {
            self.current_token()
        }
    }

    /// The token of the events in hand (one standing for the whole batch).
    pub(crate) fn current_token(&self) -> Option<AckToken> {
        let tokens: Vec<AckToken> = self
            .in_hand()
            .iter()
            .filter_map(|c| c.token.clone())
            .collect();
        (!tokens.is_empty()).then(|| AckToken::batch(tokens))
    }

    /// The partition of the events in hand (tables are co-partitioned with it); none
    /// when a batch spans partitions.
    pub(crate) fn current_partition(&self) -> Option<i32> {
        let hand = self.in_hand();
        let first = hand.first()?.raw.partition;
        (first >= 0 && hand.iter().all(|c| c.raw.partition == first)).then_some(first)
    }

    /// The timestamp of the event in hand (its event time; a batch's last), when it has
    /// one.
    pub(crate) fn current_timestamp(&self) -> Option<i64> {
        self.in_hand().last().and_then(|c| c.raw.timestamp)
    }

    /// The record of the event in hand (a batch's last).
    pub(crate) fn current_raw(&self) -> Option<Arc<RawEvent>> {
        self.in_hand().last().map(|c| c.raw.clone())
    }

    /// Answers the request in hand (a channel's `ask`); false when it is not a request
    /// or was answered already.
    pub(crate) fn reply(&self, answer: Bytes) -> bool {
        let sender = self.in_hand().iter_mut().rev().find_map(|c| c.reply.take());
        match sender {
            Some(s) => s.send(Ok(answer)).is_ok(),
            None => false,
        }
    }

    /// Applies the agent's error policy to the events in hand, which the agent cannot
    /// use (a late event, say) but need not fail for: under `skip` and `dead-letter` the
    /// agent goes on with the next event; under `fail` it should return an error.
    pub(crate) async fn dispose_current(&self, kind: FailureKind, message: &str) -> Disposition {
        let in_hand: Vec<(Arc<RawEvent>, Option<AckToken>)> = self
            .in_hand()
            .iter()
            .map(|c| (c.raw.clone(), c.token.clone()))
            .collect();
        let mut outcome = Disposition::Skipped;
        for (raw, token) in in_hand {
            match self.owner.dispose(&raw, token, kind, message).await {
                Disposition::Fail => outcome = Disposition::Fail,
                Disposition::DeadLettered if outcome == Disposition::Skipped => {
                    outcome = Disposition::DeadLettered
                }
                _ => {}
            }
        }
        outcome
    }
}
