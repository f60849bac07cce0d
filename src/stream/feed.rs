//! Where an agent instance's events come from: its queue of dispatched Kafka records,
//! or its timer.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::ack::AckToken;
use super::event::RawEvent;
use super::leadership::Leadership;
use super::timer::{TimerFeed, WallClock};
use crate::settings::TimerSpec;

/// An event on its way from the consumer to an agent instance.
pub(crate) struct Dispatched {
    pub raw: Arc<RawEvent>,
    token: Option<AckToken>,
}

impl Dispatched {
    pub fn new(raw: Arc<RawEvent>, token: AckToken) -> Self {
        Self {
            raw,
            token: Some(token),
        }
    }

    pub(crate) fn take_token(&mut self) -> AckToken {
        self.token
            .take()
            .expect("a dispatched event has its token until taken")
    }
}

impl Drop for Dispatched {
    fn drop(&mut self) {
        // Dropped from a queue without being processed: it must not count as acked.
        if let Some(t) = self.token.take() {
            t.forget();
        }
    }
}

/// Where an instance's events come from.
pub(crate) enum Feed {
    /// Events are taken from the channel in batches (fewer wake-ups) into `buffered`.
    Kafka {
        rx: mpsc::Receiver<Dispatched>,
        buffered: Vec<Dispatched>,
    },
    Timer(TimerFeed),
    /// In-memory messages from other agents of the worker (`app.channel()`).
    Channel(mpsc::Receiver<ChannelMessage>),
}

/// A message on a channel: a record, and where the answer goes when it is a request.
pub(crate) struct ChannelMessage {
    pub raw: RawEvent,
    pub reply: Option<tokio::sync::oneshot::Sender<Result<bytes::Bytes, String>>>,
}

/// Most events taken from the channel at once.
pub(crate) const BATCH: usize = 256;

impl Feed {
    pub fn kafka(rx: mpsc::Receiver<Dispatched>) -> Self {
        Feed::Kafka {
            rx,
            buffered: Vec::with_capacity(BATCH),
        }
    }

    /// A timer's feed; an error when its schedule does not parse or it fires on the
    /// leader and there is no `leader`.
    pub fn timer(
        agent: &str,
        spec: &TimerSpec,
        clock: WallClock,
        leader: Option<Arc<dyn Leadership>>,
    ) -> Result<Self, String> {
        TimerFeed::new(agent, spec, clock, leader).map(Feed::Timer)
    }
}
