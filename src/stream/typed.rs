//! The typed stream an agent iterates. Each call to `next` acks the previous event,
//! decodes the next one, and applies the agent's error policy to what cannot be decoded.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::sync::watch;

use super::ack::AckToken;
use super::event::{Event, RawEvent};
pub(crate) use super::feed::{Dispatched, Feed, BATCH};
use super::owner::{Disposition, FailureKind, StreamOwner};
use crate::codec::{Codec, CodecError};

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

    /// The timestamp of the event in hand (its event time), when it has one.
    #[allow(dead_code)] // for windowed tables, being built
    pub(crate) fn current_timestamp(&self) -> Option<i64> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|c| c.raw.timestamp)
    }

    /// Applies the agent's error policy to the event in hand, which the agent cannot
    /// use (a late event, say) but need not fail for: under `skip` and `dead-letter` the
    /// agent goes on with the next event; under `fail` it should return an error.
    #[allow(dead_code)] // for windowed tables, being built
    pub(crate) async fn dispose_current(&self, kind: FailureKind, message: &str) -> Disposition {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| (c.raw.clone(), c.token.clone()));
        match current {
            Some((raw, token)) => self.owner.dispose(&raw, token, kind, message).await,
            None => Disposition::Skipped,
        }
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
                Feed::Timer(timer) => {
                    let raw = tokio::select! {
                        biased;
                        _ = shutdown.wait_for(|s| *s) => return Ok(None),
                        raw = timer.fire() => raw,
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
