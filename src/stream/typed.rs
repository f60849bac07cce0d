//! The typed stream an agent iterates. Each call to `next` acks the previous event,
//! decodes the next one, and applies the agent's error policy to what cannot be decoded.
//! The operators over it (`filter`, `map`, `take`, ...) are in [`super::ops`].

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::sync::oneshot;

use super::ack::AckToken;
use super::event::{Event, RawEvent};
pub(crate) use super::feed::{Dispatched, Feed, BATCH};
use super::owner::{Disposition, FailureKind};
use super::port::InFlight;
pub use super::port::Port;
use crate::codec::CodecError;

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
    /// An operator the agent cannot use as written (an undeclared `group_by` stage...).
    #[error("{0}")]
    Operator(String),
    /// Forwarding an event (`group_by`, `through`, `echo`) failed.
    #[error("cannot forward event {topic}[{partition}]@{offset}: {message}")]
    Forward {
        topic: String,
        partition: i32,
        offset: i64,
        message: String,
    },
}

/// An event taken from the feed and not yet handed to the agent.
struct Pulled {
    raw: Arc<RawEvent>,
    token: Option<AckToken>,
    reply: Option<oneshot::Sender<Result<Bytes, String>>>,
}

/// A stream of events with values of type `V` and keys of type `K`.
pub struct Stream<V, K = Bytes> {
    port: Arc<Port>,
    feed: Option<Feed>,
    /// Taken from the feed, waiting for the commit barrier: kept here so that a `next`
    /// dropped while waiting loses nothing.
    pulled: Option<Pulled>,
    /// In hand and being decoded: a `next` dropped meanwhile decodes it again.
    undecoded: Option<Arc<RawEvent>>,
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
            pulled: None,
            undecoded: None,
            _types: PhantomData,
        }
    }

    /// The instance's port (what operators built on this stream share).
    pub(crate) fn port(&self) -> &Arc<Port> {
        &self.port
    }

    /// The next event, or `None` when the worker shuts down. The previous event is acked
    /// by this call: an agent is done with an event when it asks for the next one.
    /// Cancel-safe: a call dropped before it returned loses no event.
    pub async fn next(&mut self) -> Result<Option<Event<V, K>>, StreamError> {
        loop {
            let raw = match self.undecoded.clone() {
                Some(raw) => raw,
                None => match self.next_raw().await {
                    Some(raw) => raw,
                    None => return Ok(None),
                },
            };
            self.undecoded = Some(raw.clone());
            let decoded = self.decode(&raw).await;
            self.undecoded = None;
            match decoded {
                Ok(event) => return Ok(Some(event)),
                Err(e) => self.reject(&raw, e).await?,
            }
        }
    }

    /// The next record as it came, now in hand; `None` at shutdown. The previous event
    /// is let go first, unless a batch is being collected.
    pub(crate) async fn next_raw(&mut self) -> Option<Arc<RawEvent>> {
        if !self.port.is_holding() {
            drop(self.port.take_current());
            self.port.leave_event();
        }
        loop {
            if *self.port.shutdown.borrow() {
                return None;
            }
            if self.pulled.is_none() {
                self.pulled = Some(self.pull().await?);
            }
            self.port.enter_event().await;
            let p = self.pulled.take().expect("pulled above");
            if p.token.as_ref().is_some_and(|t| !t.is_current()) {
                // Rewound or revoked after dispatch (or while we waited for the
                // barrier): it will come again.
                if let Some(t) = &p.token {
                    t.forget();
                }
                if !self.port.is_holding() {
                    self.port.leave_event();
                }
                continue;
            }
            self.port.owner.event_in();
            let raw = p.raw.clone();
            self.port.push_current(InFlight {
                raw: p.raw,
                token: p.token,
                reply: p.reply,
            });
            return Some(raw);
        }
    }

    /// Waits for the feed's next record; `None` at shutdown or when the feed ended.
    async fn pull(&mut self) -> Option<Pulled> {
        let mut shutdown = self.port.shutdown.clone();
        loop {
            let feed = self.feed.as_mut()?;
            match feed {
                Feed::Kafka { rx, buffered } => {
                    if buffered.is_empty() {
                        let got = tokio::select! {
                            biased;
                            _ = shutdown.wait_for(|s| *s) => return None,
                            n = rx.recv_many(buffered, BATCH) => n,
                        };
                        if got == 0 {
                            return None;
                        }
                        // Taken from the back below: keep arrival order.
                        buffered.reverse();
                    }
                    let Some(mut d) = buffered.pop() else {
                        continue;
                    };
                    let token = d.take_token();
                    if !token.is_current() {
                        token.forget();
                        continue;
                    }
                    return Some(Pulled {
                        raw: d.raw.clone(),
                        token: Some(token),
                        reply: None,
                    });
                }
                Feed::Timer(timer) => {
                    let raw = tokio::select! {
                        biased;
                        _ = shutdown.wait_for(|s| *s) => return None,
                        raw = timer.fire() => raw,
                    };
                    return Some(Pulled {
                        raw: Arc::new(raw),
                        token: None,
                        reply: None,
                    });
                }
                Feed::Channel(rx) => {
                    let msg = tokio::select! {
                        biased;
                        _ = shutdown.wait_for(|s| *s) => return None,
                        m = rx.recv() => m?,
                    };
                    return Some(Pulled {
                        raw: Arc::new(msg.raw),
                        token: None,
                        reply: msg.reply,
                    });
                }
            }
        }
    }

    /// Applies the error policy to `raw` (in hand), which could not be decoded: `Ok`
    /// when the policy let it go and the stream goes on, the error under `fail` or when
    /// a service needed to decode is down.
    pub(crate) async fn reject(
        &mut self,
        raw: &Arc<RawEvent>,
        e: CodecError,
    ) -> Result<(), StreamError> {
        let (topic, partition, offset) = (raw.topic.to_string(), raw.partition, raw.offset);
        if e.is_transient() {
            return Err(StreamError::Unavailable {
                topic,
                partition,
                offset,
                source: e,
            });
        }
        let message = format!("cannot decode: {e}");
        let token = self
            .port
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|c| Arc::ptr_eq(&c.raw, raw))
            .and_then(|c| c.token.clone());
        match self
            .port
            .owner
            .dispose(raw, token, FailureKind::Decode, &message)
            .await
        {
            Disposition::Skipped | Disposition::DeadLettered => {
                self.port.drop_current(raw);
                if !self.port.is_holding() {
                    self.port.leave_event();
                }
                Ok(())
            }
            Disposition::Fail => Err(StreamError::Decode {
                topic,
                partition,
                offset,
                source: e,
            }),
        }
    }

    pub(crate) async fn decode(&self, raw: &RawEvent) -> Result<Event<V, K>, CodecError> {
        let key: Option<K> = match &raw.key {
            None => None,
            Some(k) => Some(self.port.key_codec.decode(Some(k)).await?),
        };
        self.decode_with_key(raw, key).await
    }

    /// Decodes the value with the stream's codec, the key given.
    pub(crate) async fn decode_with_key<K2>(
        &self,
        raw: &RawEvent,
        key: Option<K2>,
    ) -> Result<Event<V, K2>, CodecError> {
        let value: V = self.port.value_codec.decode(raw.value.as_deref()).await?;
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
        // An event pulled and not handed out is not lost: it is let go unacked, and
        // comes again after a rewind or restart.
        if let Some(p) = self.pulled.take() {
            if let Some(t) = p.token {
                t.forget();
            }
        }
    }
}
