//! Faust's stream operators. Every stream an agent reads — the typed [`Stream`] and
//! each operator over it — is an [`EventStream`]: asking it for the next item lets go of
//! (acks) the previous one, so the acks of the events underneath are preserved through
//! any chain of operators. `take` holds a whole batch until the agent asks for the next.
//!
//! Forwarding operators (`echo`, `through`, `group_by`) need the agent's producer and
//! live in the agent layer (`crate::agent::stages`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::event::Event;
use super::port::Port;
use super::typed::{Stream, StreamError};

/// What `next` returns: an item, `None` when the worker shuts down, or an error to
/// return from the agent (which restarts it and applies its error policy).
pub type Next<T> = Result<Option<T>, StreamError>;

/// A stream of items an agent iterates with `while let Some(x) = s.next().await? {..}`.
pub trait EventStream: Send + Sized + 'static {
    type Item: Send + 'static;

    /// The next item; the previous one is acked (a batch's events, for `take`).
    fn next(&mut self) -> impl Future<Output = Next<Self::Item>> + Send;

    /// The port of the agent instance the events come from.
    #[doc(hidden)]
    fn port(&self) -> &Arc<Port>;

    /// Only the items for which `keep` is true; the others are acked and counted as
    /// `filtered` on `/agents`.
    fn filter<F>(self, keep: F) -> Filter<Self, F>
    where
        F: FnMut(&Self::Item) -> bool + Send + 'static,
    {
        Filter { inner: self, keep }
    }

    /// Each item turned into `f(item)`.
    fn map<T, F>(self, f: F) -> Map<Self, F>
    where
        T: Send + 'static,
        F: FnMut(Self::Item) -> T + Send + 'static,
    {
        Map { inner: self, f }
    }

    /// Each item turned into what the async `f(item)` gives.
    fn then<T, F, Fut>(self, f: F) -> Then<Self, F>
    where
        T: Send + 'static,
        F: FnMut(Self::Item) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send,
    {
        Then { inner: self, f }
    }

    /// Each item with its number in this stream, from 0 (counting again from 0 when the
    /// agent restarts).
    fn enumerate(self) -> Enumerate<Self> {
        Enumerate {
            inner: self,
            count: 0,
        }
    }

    /// Batches of up to `n` items: a batch is handed out when it is full or `within`
    /// after its first item arrived, never empty. The events of a batch are acked when
    /// the agent asks for the next batch (and every record it sent for the batch is
    /// delivered). Under exactly-once a commit waits for the batch in hand.
    fn take(self, n: usize, within: Duration) -> Take<Self> {
        let port = self.port().clone();
        Take {
            stream: Some(self),
            pending: None,
            n: n.max(1),
            within,
            port,
            ended: false,
        }
    }
}

impl<V, K> EventStream for Stream<V, K>
where
    V: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
{
    type Item = Event<V, K>;

    fn next(&mut self) -> impl Future<Output = Next<Event<V, K>>> + Send {
        Stream::next(self)
    }

    fn port(&self) -> &Arc<Port> {
        Stream::port(self)
    }
}

impl<V, K> Stream<V, K>
where
    V: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
{
    /// (key, value) pairs, as Faust's `stream.items()`.
    pub fn items(self) -> Items<V, K> {
        Items { inner: self }
    }
}

pub struct Filter<S, F> {
    inner: S,
    keep: F,
}

impl<S, F> EventStream for Filter<S, F>
where
    S: EventStream,
    F: FnMut(&S::Item) -> bool + Send + 'static,
{
    type Item = S::Item;

    async fn next(&mut self) -> Next<S::Item> {
        loop {
            match self.inner.next().await? {
                Some(item) if (self.keep)(&item) => return Ok(Some(item)),
                Some(_) => self.inner.port().owner.filtered(),
                None => return Ok(None),
            }
        }
    }

    fn port(&self) -> &Arc<Port> {
        self.inner.port()
    }
}

pub struct Map<S, F> {
    inner: S,
    f: F,
}

impl<S, T, F> EventStream for Map<S, F>
where
    S: EventStream,
    T: Send + 'static,
    F: FnMut(S::Item) -> T + Send + 'static,
{
    type Item = T;

    async fn next(&mut self) -> Next<T> {
        Ok(self.inner.next().await?.map(&mut self.f))
    }

    fn port(&self) -> &Arc<Port> {
        self.inner.port()
    }
}

pub struct Then<S, F> {
    inner: S,
    f: F,
}

impl<S, T, F, Fut> EventStream for Then<S, F>
where
    S: EventStream,
    T: Send + 'static,
    F: FnMut(S::Item) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send,
{
    type Item = T;

    async fn next(&mut self) -> Next<T> {
        match self.inner.next().await? {
            Some(item) => Ok(Some((self.f)(item).await)),
            None => Ok(None),
        }
    }

    fn port(&self) -> &Arc<Port> {
        self.inner.port()
    }
}

pub struct Enumerate<S> {
    inner: S,
    count: u64,
}

impl<S: EventStream> EventStream for Enumerate<S> {
    type Item = (u64, S::Item);

    async fn next(&mut self) -> Next<(u64, S::Item)> {
        Ok(self.inner.next().await?.map(|item| {
            let n = self.count;
            self.count += 1;
            (n, item)
        }))
    }

    fn port(&self) -> &Arc<Port> {
        self.inner.port()
    }
}

pub struct Items<V, K> {
    inner: Stream<V, K>,
}

impl<V, K> EventStream for Items<V, K>
where
    V: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
{
    type Item = (Option<K>, V);

    async fn next(&mut self) -> Next<(Option<K>, V)> {
        Ok(self.inner.next().await?.map(|e| (e.key, e.value)))
    }

    fn port(&self) -> &Arc<Port> {
        self.inner.port()
    }
}

type Pending<S> =
    Pin<Box<dyn Future<Output = (S, Next<<S as EventStream>::Item>)> + Send + 'static>>;

pub struct Take<S: EventStream> {
    /// The stream, or the call to its `next` that a full or timed-out batch left
    /// waiting: that call is resumed, never dropped, so no event is lost in between.
    stream: Option<S>,
    pending: Option<Pending<S>>,
    n: usize,
    within: Duration,
    port: Arc<Port>,
    ended: bool,
}

impl<S: EventStream> EventStream for Take<S> {
    type Item = Vec<S::Item>;

    async fn next(&mut self) -> Next<Vec<S::Item>> {
        // The previous batch is done.
        drop(self.port.take_current());
        self.port.leave_event();
        if self.ended {
            return Ok(None);
        }
        self.port.set_holding(true);
        let mut batch = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        let outcome = loop {
            if self.pending.is_none() {
                let mut s = self.stream.take().expect("the stream is here when idle");
                self.pending = Some(Box::pin(async move {
                    let r = s.next().await;
                    (s, r)
                }));
            }
            let call = self.pending.as_mut().expect("set above");
            let got = match deadline {
                None => Some(call.await),
                Some(d) => tokio::time::timeout_at(d, call).await.ok(),
            };
            let Some((s, r)) = got else {
                break Ok(());
            };
            self.pending = None;
            self.stream = Some(s);
            match r {
                Ok(Some(item)) => {
                    batch.push(item);
                    if batch.len() >= self.n {
                        break Ok(());
                    }
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + self.within);
                }
                Ok(None) => {
                    self.ended = true;
                    break Ok(());
                }
                Err(e) => break Err(e),
            }
        };
        self.port.set_holding(false);
        // On an error the batch stays in hand: the error policy applies to its events.
        outcome?;
        Ok((!batch.is_empty()).then_some(batch))
    }

    fn port(&self) -> &Arc<Port> {
        &self.port
    }
}
