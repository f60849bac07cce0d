//! The typed stream an agent iterates. Each call to `next` acks the previous event,
//! decodes the next one, and applies the agent's error policy to what cannot be decoded.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use super::ack::AckToken;
use super::event::{Event, Headers, RawEvent};
use super::owner::{Disposition, FailureKind, StreamOwner};
use super::timer::{now_ms, Tick};
use crate::codec::{Codec, CodecError};

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

    fn take_token(&mut self) -> AckToken {
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
    Timer {
        interval: tokio::time::Interval,
        next: u64,
        name: Arc<str>,
    },
}

/// Most events taken from the channel at once.
const BATCH: usize = 256;

impl Feed {
    pub fn kafka(rx: mpsc::Receiver<Dispatched>) -> Self {
        Feed::Kafka {
            rx,
            buffered: Vec::with_capacity(BATCH),
        }
    }

    pub fn timer(agent: &str, every: Duration) -> Self {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // A slow tick does not cause a burst of catch-up ticks.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Feed::Timer {
            interval,
            next: 0,
            name: Arc::from(format!("timer:{agent}")),
        }
    }
}

/// The event an instance is working on: what the supervisor applies the error policy
/// to when the agent fails.
pub(crate) struct InFlight {
    pub raw: Arc<RawEvent>,
    pub token: Option<AckToken>,
}

/// What an instance's successive streams share: its feed (kept across restarts), the
/// in-flight slot, codecs and error handling.
pub struct Port {
    pub(crate) feed: Mutex<Option<Feed>>,
    pub(crate) current: Mutex<Option<InFlight>>,
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
    pub(crate) fn take_current(&self) -> Option<InFlight> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Waits for the commit barrier (exactly-once only) before an event is handed out.
    async fn enter_event(&self) {
        if let Some(b) = &self.barrier {
            let g = b.clone().read_owned().await;
            *self.guard.lock().unwrap_or_else(|p| p.into_inner()) = Some(g);
        }
    }

    /// The agent is done with its event (or failed): a commit may happen.
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

    pub(crate) fn current_token(&self) -> Option<AckToken> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|c| c.token.clone())
    }

    /// The partition of the event in hand (tables are co-partitioned with it).
    pub(crate) fn current_partition(&self) -> Option<i32> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.raw.partition)
            .filter(|p| *p >= 0)
    }

    fn set_current(&self, c: InFlight) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }
}

/// Errors a stream hands to its agent; returning them (with `?`) restarts the agent.
#[derive(Debug, Error)]
pub enum StreamError {
    #[error("cannot decode event {topic}[{partition}]@{offset}: {source}")]
    Decode {
        topic: String,
        partition: i32,
        offset: i64,
        source: CodecError,
    },
    #[error("a service needed to decode {topic}[{partition}]@{offset} is unavailable: {source}")]
    Unavailable {
        topic: String,
        partition: i32,
        offset: i64,
        source: CodecError,
    },
}

/// A stream of events with values of type `V` and keys of type `K`.
pub struct Stream<V, K = Bytes> {
    port: Arc<Port>,
    feed: Option<Feed>,
    _types: PhantomData<fn() -> (V, K)>,
}

impl<V, K> Stream<V, K>
where
    V: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
{
    pub(crate) fn attach(port: Arc<Port>) -> Self {
        let feed = port.feed.lock().unwrap_or_else(|p| p.into_inner()).take();
        Self {
            port,
            feed,
            _types: PhantomData,
        }
    }

    /// The next event, or `None` when the worker shuts down. The previous event is acked
    /// by this call: an agent is done with an event when it asks for the next one.
    pub async fn next(&mut self) -> Result<Option<Event<V, K>>, StreamError> {
        drop(self.port.take_current());
        self.port.leave_event();
        let mut shutdown = self.port.shutdown.clone();
        loop {
            if *shutdown.borrow() {
                return Ok(None);
            }
            let Some(feed) = self.feed.as_mut() else {
                return Ok(None);
            };
            let (raw, token) = match feed {
                Feed::Kafka { rx, buffered } => {
                    if buffered.is_empty() {
                        let got = tokio::select! {
                            biased;
                            _ = shutdown.wait_for(|s| *s) => return Ok(None),
                            n = rx.recv_many(buffered, BATCH) => n,
                        };
                        if got == 0 {
                            return Ok(None);
                        }
                        // Taken from the back below: keep arrival order.
                        buffered.reverse();
                    }
                    let Some(mut d) = buffered.pop() else {
                        continue;
                    };
                    let token = d.take_token();
                    if !token.is_current() {
                        // Rewound or revoked after dispatch: it will come again.
                        token.forget();
                        continue;
                    }
                    (d.raw.clone(), Some(token))
                }
                Feed::Timer {
                    interval,
                    next,
                    name,
                } => {
                    tokio::select! {
                        biased;
                        _ = shutdown.wait_for(|s| *s) => return Ok(None),
                        _ = interval.tick() => {}
                    }
                    let tick = Tick {
                        n: *next,
                        at_ms: now_ms(),
                    };
                    *next += 1;
                    let raw = RawEvent {
                        key: None,
                        value: Some(Bytes::from(
                            serde_json::to_vec(&tick).expect("tick serializes"),
                        )),
                        topic: name.clone(),
                        partition: -1,
                        offset: tick.n as i64,
                        timestamp: Some(tick.at_ms),
                        headers: Headers::default(),
                    };
                    (Arc::new(raw), None)
                }
            };
            self.port.enter_event().await;
            if token.as_ref().is_some_and(|t| !t.is_current()) {
                // An abort rewound the partition while we waited for the barrier.
                if let Some(t) = &token {
                    t.forget();
                }
                self.port.leave_event();
                continue;
            }
            self.port.owner.event_in();
            match self.decode(&raw).await {
                Ok(event) => {
                    self.port.set_current(InFlight { raw, token });
                    return Ok(Some(event));
                }
                Err(e) => {
                    let (topic, partition, offset) =
                        (raw.topic.to_string(), raw.partition, raw.offset);
                    if e.is_transient() {
                        self.port.set_current(InFlight { raw, token });
                        return Err(StreamError::Unavailable {
                            topic,
                            partition,
                            offset,
                            source: e,
                        });
                    }
                    let message = format!("cannot decode: {e}");
                    match self
                        .port
                        .owner
                        .dispose(&raw, token.clone(), FailureKind::Decode, &message)
                        .await
                    {
                        Disposition::Skipped | Disposition::DeadLettered => {
                            drop(token);
                            self.port.leave_event();
                            continue;
                        }
                        Disposition::Fail => {
                            self.port.set_current(InFlight { raw, token });
                            return Err(StreamError::Decode {
                                topic,
                                partition,
                                offset,
                                source: e,
                            });
                        }
                    }
                }
            }
        }
    }

    async fn decode(&self, raw: &RawEvent) -> Result<Event<V, K>, CodecError> {
        let value: V = self.port.value_codec.decode(raw.value.as_deref()).await?;
        let key: Option<K> = match &raw.key {
            None => None,
            Some(k) => Some(self.port.key_codec.decode(Some(k)).await?),
        };
        Ok(Event {
            key,
            value,
            topic: raw.topic.clone(),
            partition: raw.partition,
            offset: raw.offset,
            timestamp: raw.timestamp,
            headers: raw.headers.clone(),
        })
    }
}

impl<V, K> Drop for Stream<V, K> {
    fn drop(&mut self) {
        // The feed outlives this stream: a restarted agent continues where it stopped.
        if let Some(feed) = self.feed.take() {
            *self.port.feed.lock().unwrap_or_else(|p| p.into_inner()) = Some(feed);
        }
    }
}
