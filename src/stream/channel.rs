//! Channels: in-memory streams between the agents of one worker (Faust's
//! `app.channel()`). An agent whose source is `channel = "name"` reads what others send
//! with `ctx.channel("name").send(..)`, or answers what they `ask`. A channel is bounded:
//! a sender waits while the reader's queue is full. Nothing on a channel is persisted —
//! a message in a queue when the worker stops is gone (use a topic where that matters).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::event::{Headers, RawEvent};
use super::feed::ChannelMessage;
use super::timer::now_ms;

/// Messages queued per reading instance before senders wait.
pub const CHANNEL_CAPACITY: usize = 1024;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    #[error(
        "no agent of this worker reads channel {0:?} (an agent with `source.channel = {0:?}`)"
    )]
    NoReader(String),
    #[error("channel {0:?} is closed: its reader stopped")]
    Closed(String),
    #[error("cannot encode a message for channel {channel:?}: {message}")]
    Encode { channel: String, message: String },
    #[error("the reader of channel {channel:?} did not answer: {message}")]
    NoAnswer { channel: String, message: String },
    #[error("cannot decode the answer from channel {channel:?}: {message}")]
    Decode { channel: String, message: String },
}

struct Readers {
    queues: Vec<mpsc::Sender<ChannelMessage>>,
    /// Where a message without a key goes next.
    round_robin: AtomicUsize,
    sequence: AtomicI64,
}

/// The channels of a worker, by name.
#[derive(Default)]
pub struct ChannelHub {
    channels: Mutex<HashMap<String, Arc<Readers>>>,
}

impl ChannelHub {
    /// Opens channel `name` for a reader with `instances` instances and returns their
    /// queues (a restarted worker opens it anew).
    pub(crate) fn open(&self, name: &str, instances: usize) -> Vec<mpsc::Receiver<ChannelMessage>> {
        let (queues, receivers): (Vec<_>, Vec<_>) = (0..instances.max(1))
            .map(|_| mpsc::channel(CHANNEL_CAPACITY))
            .unzip();
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                name.to_string(),
                Arc::new(Readers {
                    queues,
                    round_robin: AtomicUsize::new(0),
                    sequence: AtomicI64::new(0),
                }),
            );
        receivers
    }

    /// A handle for sending to channel `name` (whether a reader exists is found out on
    /// sending).
    pub fn channel(self: &Arc<Self>, name: &str) -> Channel {
        Channel {
            hub: self.clone(),
            name: name.to_string(),
        }
    }

    fn readers(&self, name: &str) -> Option<Arc<Readers>> {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

/// A channel to send to.
#[derive(Clone)]
pub struct Channel {
    hub: Arc<ChannelHub>,
    name: String,
}

impl Channel {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues `value` (JSON) for the channel's reader, waiting while its queue is full.
    /// Messages with one key go to one instance of the reader, in order.
    pub async fn send<K, V>(&self, key: Option<&K>, value: &V) -> Result<(), ChannelError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        self.deliver(key, value, None).await
    }

    /// Sends `value` as a request and waits for the reader's answer (`ctx.reply`).
    pub async fn ask<K, V, R>(&self, key: Option<&K>, value: &V) -> Result<R, ChannelError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let (tx, rx) = oneshot::channel();
        self.deliver(key, value, Some(tx)).await?;
        let answer = rx
            .await
            .map_err(|_| ChannelError::NoAnswer {
                channel: self.name.clone(),
                message: "the request was dropped (the reader stopped or failed)".into(),
            })?
            .map_err(|message| ChannelError::NoAnswer {
                channel: self.name.clone(),
                message,
            })?;
        serde_json::from_slice(&answer).map_err(|e| ChannelError::Decode {
            channel: self.name.clone(),
            message: e.to_string(),
        })
    }

    async fn deliver<K, V>(
        &self,
        key: Option<&K>,
        value: &V,
        reply: Option<oneshot::Sender<Result<Bytes, String>>>,
    ) -> Result<(), ChannelError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        let encode = |e: serde_json::Error| ChannelError::Encode {
            channel: self.name.clone(),
            message: e.to_string(),
        };
        let key = key
            .map(|k| serde_json::to_vec(k).map(Bytes::from))
            .transpose()
            .map_err(encode)?;
        let value = Bytes::from(serde_json::to_vec(value).map_err(encode)?);
        let readers = self
            .hub
            .readers(&self.name)
            .ok_or_else(|| ChannelError::NoReader(self.name.clone()))?;
        let n = readers.queues.len();
        let instance = match &key {
            Some(k) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                k.hash(&mut h);
                (h.finish() % n as u64) as usize
            }
            None => readers.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        };
        let raw = RawEvent {
            key,
            value: Some(value),
            topic: Arc::from(format!("channel:{}", self.name)),
            partition: -1,
            offset: readers.sequence.fetch_add(1, Ordering::Relaxed),
            timestamp: Some(now_ms()),
            headers: Headers::default(),
        };
        readers.queues[instance]
            .send(ChannelMessage { raw, reply })
            .await
            .map_err(|_| ChannelError::Closed(self.name.clone()))
    }
}
