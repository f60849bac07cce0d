//! Events as agents see them.

use std::sync::Arc;

use bytes::Bytes;

/// Record headers in their order on the wire; a header may have a null value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, Option<Bytes>)>);

impl Headers {
    /// The last value of header `name` (Kafka allows repeats; the last one wins).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Bytes>) {
        self.0.push((name.into(), Some(value.into())));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }
}

/// A record as it came from Kafka (or a timer), before decoding.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch, when the record has a timestamp.
    pub timestamp: Option<i64>,
    pub headers: Headers,
}

/// A decoded event: typed key and value plus where it came from.
#[derive(Debug, Clone)]
pub struct Event<V, K = Bytes> {
    /// `None` for a record without a key.
    pub key: Option<K>,
    pub value: V,
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub headers: Headers,
}

impl<V, K> Event<V, K> {
    /// Replaces the value, keeping key and metadata (for mapping stages).
    pub fn map<W>(self, f: impl FnOnce(V) -> W) -> Event<W, K> {
        Event {
            key: self.key,
            value: f(self.value),
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
}
