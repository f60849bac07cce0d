//! Windowed tables: a value per key and time window, over event time, with a grace
//! period for out-of-order events and expiry of old windows (the arithmetic is in
//! [`super::window`]).
//!
//! Windows are entries of the table's store under (key, window start) and go through
//! [`TablePartition::write`] like every write, so recovery and partition moves carry
//! them. The partition's stream time (the highest event time it has seen) is an entry
//! too, written with the event that moved it: closing and expiry depend only on what the
//! changelog holds, never on what a worker kept in memory (faust#385). In memory there
//! is only an index of the windows by start, rebuilt from the store when the partition
//! is first used after it was opened (and after staged writes were dropped), so that
//! expiry finds every expired window of the partition, also of keys that get no more
//! events.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::manager::TableRuntime;
use super::partition::TablePartition;
use super::window::{
    after_key, decode_time, encode_time, key_prefix, split_window_key, window_key, WindowSpec,
    STREAM_TIME_KEY,
};
use super::TableError;
use crate::stream::sink::{DeliveryObserver, Producer};
use crate::stream::{Disposition, FailureKind, Port};

/// What the handle keeps of a partition in memory.
pub(crate) struct WindowCursor {
    /// The partition's generation it was loaded at (see [`TablePartition::generation`]).
    generation: u64,
    stream_time: Option<i64>,
    /// Window start → the store keys of the windows starting there.
    index: BTreeMap<i64, BTreeSet<Vec<u8>>>,
}

/// Which time an update or `current` read takes as the event's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelativeTo {
    /// The timestamp of the event in hand (its Kafka timestamp): Faust's
    /// `relative_to_stream`.
    Stream,
    /// The wall clock: Faust's `relative_to_now`.
    Now,
    /// A time the agent read from the event (a field): Faust's `relative_to_field`.
    Field(i64),
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    /// The event went into this many windows (hopping: several).
    Windows(usize),
    /// Every window of the event had closed: nothing changed, the event was counted as
    /// late and handed to the agent's error policy (skipped or dead-lettered).
    Late,
}

/// One window of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window<V> {
    pub start: i64,
    /// Exclusive.
    pub end: i64,
    pub value: V,
}

/// A window in bytes, for pages.
#[derive(Debug, Clone)]
pub struct RawWindow {
    pub start: i64,
    pub end: i64,
    pub value: Vec<u8>,
}

type Merge<V> = Arc<dyn Fn(V, V) -> V + Send + Sync>;

/// An agent's handle on a windowed table (`ctx.windowed_table::<T>()`).
pub struct WindowedTable<K, V> {
    rt: Arc<TableRuntime>,
    spec: WindowSpec,
    producer: Producer,
    port: Arc<Port>,
    observer: Arc<dyn DeliveryObserver>,
    relative_to: RelativeTo,
    merge: Option<Merge<V>>,
    _types: PhantomData<fn() -> K>,
}

impl<K, V> Clone for WindowedTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            rt: self.rt.clone(),
            spec: self.spec,
            producer: self.producer.clone(),
            port: self.port.clone(),
            observer: self.observer.clone(),
            relative_to: self.relative_to,
            merge: self.merge.clone(),
            _types: PhantomData,
        }
    }
}

fn codec_error(e: crate::codec::CodecError) -> TableError {
    TableError::Codec(e.to_string())
}

/// Milliseconds since the Unix epoch by the wall clock.
fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The stream time a partition's store (staged writes included) holds.
pub(crate) fn stored_stream_time(part: &TablePartition) -> Result<Option<i64>, TableError> {
    Ok(part.get(STREAM_TIME_KEY)?.as_deref().and_then(decode_time))
}

/// The windows of `key` (encoded) in `part` starting in `[from, to]`, in time order,
/// staged writes included; expired ones too (the caller filters).
fn scan_key(
    part: &TablePartition,
    key: &[u8],
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Vec<u8>)>, TableError> {
    const CHUNK: usize = 256;
    let mut out = Vec::new();
    // The prefix alone sorts before every window of the key.
    let mut after = match from.checked_sub(1) {
        Some(f) => window_key(key, f),
        None => key_prefix(key),
    };
    loop {
        let chunk = part.scan(Some(&after), CHUNK)?;
        let n = chunk.len();
        for (k, v) in chunk {
            match split_window_key(&k) {
                Some((kk, start)) if kk == key && start <= to => out.push((start, v)),
                _ => return Ok(out),
            }
            after = k;
        }
        if n < CHUNK {
            return Ok(out);
        }
    }
}

/// Every window of every key of `part` with its start, in store order.
fn all_windows(part: &TablePartition) -> Result<Vec<super::store::Entry>, TableError> {
    const CHUNK: usize = 4096;
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let chunk = part.scan(after.as_deref(), CHUNK)?;
        let n = chunk.len();
        after = chunk.last().map(|(k, _)| k.clone());
        out.extend(
            chunk
                .into_iter()
                .filter(|(k, _)| split_window_key(k).is_some()),
        );
        if n < CHUNK {
            return Ok(out);
        }
    }
}

fn load_cursor(part: &TablePartition) -> Result<WindowCursor, TableError> {
    let generation = part.generation();
    let stream_time = stored_stream_time(part)?;
    let mut index: BTreeMap<i64, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for (k, _) in all_windows(part)? {
        if let Some((_, start)) = split_window_key(&k) {
            index.entry(start).or_default().insert(k);
        }
    }
    Ok(WindowCursor {
        generation,
        stream_time,
        index,
    })
}

impl<K, V> WindowedTable<K, V>
where
    K: Serialize + DeserializeOwned + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    pub(crate) fn bind(
        rt: Arc<TableRuntime>,
        agent: &str,
        producer: Producer,
        port: Arc<Port>,
        observer: Arc<dyn DeliveryObserver>,
    ) -> Result<Self, TableError> {
        let spec = rt
            .window
            .ok_or_else(|| TableError::NotWindowed(rt.name.to_string()))?;
        if rt.settings.agent.as_deref() != Some(agent) {
            return Err(TableError::NotAllowed {
                table: rt.name.to_string(),
                agent: agent.to_string(),
                reason: format!(
                    "it is written by agent {:?}, and only its writer uses a windowed table",
                    rt.settings.agent.as_deref().unwrap_or("-")
                ),
            });
        }
        Ok(Self {
            rt,
            spec,
            producer,
            port,
            observer,
            relative_to: RelativeTo::Stream,
            merge: None,
            _types: PhantomData,
        })
    }

    pub fn name(&self) -> &str {
        &self.rt.name
    }

    /// The table's windows.
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Updates and `current` take the event in hand's timestamp (the default).
    pub fn relative_to_stream(&self) -> Self {
        self.relative(RelativeTo::Stream)
    }

    /// Updates and `current` take the wall clock.
    pub fn relative_to_now(&self) -> Self {
        self.relative(RelativeTo::Now)
    }

    /// Updates and `current` take `event_time_ms`, a time the agent read from the event
    /// (Faust's `relative_to_field`): `wt.at(order.placed_at).update(..)`.
    pub fn at(&self, event_time_ms: i64) -> Self {
        self.relative(RelativeTo::Field(event_time_ms))
    }

    fn relative(&self, relative_to: RelativeTo) -> Self {
        let mut h = self.clone();
        h.relative_to = relative_to;
        h
    }

    /// How two adjacent buckets of a sliding window combine (`|a, b| a + b` for a
    /// count); reading a sliding table needs it. The older bucket comes first.
    pub fn with_merge(mut self, merge: impl Fn(V, V) -> V + Send + Sync + 'static) -> Self {
        self.merge = Some(Arc::new(merge));
        self
    }

    /// The time updates and `current` use, by `relative_to`.
    pub fn event_time(&self) -> Result<i64, TableError> {
        match self.relative_to {
            RelativeTo::Stream => self
                .port
                .current_timestamp()
                .ok_or_else(|| TableError::NoEventTime(self.rt.name.to_string())),
            RelativeTo::Now => Ok(now_ms()),
            RelativeTo::Field(t) => Ok(t),
        }
    }

    /// The window `[start, end)` a read at `t` answers.
    pub fn window_at(&self, t: i64) -> (i64, i64) {
        self.spec.window_at(t)
    }

    fn partition(&self) -> Result<Arc<TablePartition>, TableError> {
        let p = if self.rt.partitions == 1 {
            0
        } else {
            self.port
                .current_partition()
                .ok_or_else(|| TableError::NoPartition(self.rt.name.to_string()))?
        };
        self.rt.partition(p).ok_or_else(|| TableError::NotHeld {
            table: self.rt.name.to_string(),
            partition: p,
        })
    }

    async fn encode_key(&self, key: &K) -> Result<Vec<u8>, TableError> {
        self.rt.key_codec.encode(key).await.map_err(codec_error)
    }

    async fn decode_value(&self, bytes: &[u8]) -> Result<V, TableError> {
        self.rt
            .value_codec
            .decode(Some(bytes))
            .await
            .map_err(codec_error)
    }

    async fn write(
        &self,
        part: &Arc<TablePartition>,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        with_event: bool,
    ) -> Result<(), TableError> {
        // Expiry's tombstones belong to no event: if one is lost, the window is still in
        // the store and the next sweep after reloading removes it again.
        let token = if with_event {
            self.port.delivery_token()
        } else {
            None
        };
        part.write(
            self.producer.as_ref(),
            &self.rt.changelog,
            key,
            value,
            token,
            self.observer.clone(),
        )
        .await
        .map_err(|e| TableError::Changelog {
            table: self.rt.name.to_string(),
            message: e.to_string(),
        })
    }

    /// The partition's cursor, loaded (and expired windows swept) when the partition is
    /// new to this worker or lost staged writes.
    async fn cursor<'a>(
        &self,
        part: &'a Arc<TablePartition>,
    ) -> Result<tokio::sync::MutexGuard<'a, Option<WindowCursor>>, TableError> {
        let mut g = part.windows.lock().await;
        if g.as_ref().is_none_or(|c| c.generation != part.generation()) {
            *g = None;
            let mut c = load_cursor(part)?;
            self.sweep(part, &mut c).await?;
            *g = Some(c);
        }
        Ok(g)
    }

    /// Removes the expired windows of the whole partition from the store and the
    /// changelog (tombstones).
    async fn sweep(
        &self,
        part: &Arc<TablePartition>,
        c: &mut WindowCursor,
    ) -> Result<(), TableError> {
        while let Some((&start, _)) = c.index.first_key_value() {
            if !self.spec.is_expired(start, c.stream_time) {
                break;
            }
            let keys = c.index.pop_first().map(|(_, k)| k).unwrap_or_default();
            for k in keys {
                self.write(part, k, None, false).await?;
            }
        }
        Ok(())
    }

    /// Folds the event into every open window of `key` at the event time (by
    /// `relative_to`): `f` gets each window's value (`None` for a new window) and
    /// returns the new one. An event whose windows all closed is late: it changes
    /// nothing, is counted (`late_events` on `/tables`) and goes to the agent's error
    /// policy; under `fail` this returns the error for the agent to return.
    pub async fn update<F>(&self, key: &K, f: F) -> Result<Updated, TableError>
    where
        F: FnMut(Option<V>) -> V + Send,
    {
        let t = self.event_time()?;
        let part = self.partition()?;
        let k = self.encode_key(key).await?;
        let mut g = self.cursor(&part).await?;
        let Some(c) = g.as_mut() else {
            return Err(TableError::Closed);
        };
        let before = c.stream_time;
        let done = self.update_in(&part, c, &k, t, f).await;
        if done.is_err() {
            // Half an update may be staged: load again from what the store holds.
            *g = None;
        }
        match done? {
            Some(n) => Ok(Updated::Windows(n)),
            None => {
                drop(g);
                self.late(t, before).await
            }
        }
    }

    async fn update_in<F>(
        &self,
        part: &Arc<TablePartition>,
        c: &mut WindowCursor,
        k: &[u8],
        t: i64,
        mut f: F,
    ) -> Result<Option<usize>, TableError>
    where
        F: FnMut(Option<V>) -> V + Send,
    {
        let st = c.stream_time.map_or(t, |st| st.max(t));
        let starts = self.spec.open_starts(t, Some(st));
        if starts.is_empty() {
            return Ok(None);
        }
        let advanced = c.stream_time != Some(st);
        if advanced {
            self.write(part, STREAM_TIME_KEY.to_vec(), Some(encode_time(st)), true)
                .await?;
            c.stream_time = Some(st);
        }
        for &start in &starts {
            let wk = window_key(k, start);
            let old = match part.get(&wk)? {
                Some(b) => Some(self.decode_value(&b).await?),
                None => None,
            };
            let new = f(old);
            let bytes = self
                .rt
                .value_codec
                .encode(&new)
                .await
                .map_err(codec_error)?;
            self.write(part, wk.clone(), Some(bytes), true).await?;
            c.index.entry(start).or_default().insert(wk);
        }
        if advanced {
            self.sweep(part, c).await?;
        }
        Ok(Some(starts.len()))
    }

    async fn late(&self, t: i64, stream_time: Option<i64>) -> Result<Updated, TableError> {
        self.rt.late_events.fetch_add(1, Ordering::Relaxed);
        let message = format!(
            "table {}: event time {t} is late: every window it belongs to has closed \
             (stream time {}, grace {} ms)",
            self.rt.name,
            stream_time.map_or_else(|| "-".to_string(), |s| s.to_string()),
            self.spec.grace_ms
        );
        match self.port.dispose_current(FailureKind::Late, &message).await {
            Disposition::Fail => Err(TableError::Late {
                table: self.rt.name.to_string(),
                message,
            }),
            Disposition::Skipped | Disposition::DeadLettered => Ok(Updated::Late),
        }
    }

    /// The value of the window of the event time (by `relative_to`): Faust's
    /// `.current()`.
    pub async fn current(&self, key: &K) -> Result<Option<V>, TableError> {
        self.value_at(key, self.event_time()?).await
    }

    /// The value of the window of the wall clock's now: Faust's `.now()`.
    pub async fn now(&self, key: &K) -> Result<Option<V>, TableError> {
        self.value_at(key, now_ms()).await
    }

    /// The value of the window of the event time minus `d`: Faust's `.delta(d)`.
    pub async fn delta(&self, key: &K, d: Duration) -> Result<Option<V>, TableError> {
        let t = self.event_time()?.saturating_sub(duration_ms(d));
        self.value_at(key, t).await
    }

    /// The value of the window a read at `t` answers ([`Self::window_at`]); `None` when
    /// it has no value or expired. A sliding window merges its buckets (`with_merge`).
    pub async fn value_at(&self, key: &K, t: i64) -> Result<Option<V>, TableError> {
        let part = self.partition()?;
        let k = self.encode_key(key).await?;
        let g = self.cursor(&part).await?;
        let stream_time = g.as_ref().and_then(|c| c.stream_time);
        let window = self.spec.window_at(t);
        if stream_time.is_some_and(|st| self.spec.end_expired(window.1, st)) {
            return Ok(None);
        }
        let (first, last) = self.spec.read_starts(window);
        if first == last {
            return match part.get(&window_key(&k, first))? {
                Some(b) => Ok(Some(self.decode_value(&b).await?)),
                None => Ok(None),
            };
        }
        let merge = self
            .merge
            .clone()
            .ok_or_else(|| TableError::NoMerge(self.rt.name.to_string()))?;
        let buckets = scan_key(&part, &k, first, last)?;
        drop(g);
        let mut acc: Option<V> = None;
        for (_, b) in buckets {
            let v = self.decode_value(&b).await?;
            acc = Some(match acc {
                Some(a) => merge(a, v),
                None => v,
            });
        }
        Ok(acc)
    }

    /// The stored windows of `key` starting in `[from, to]`, oldest first, expired ones
    /// left out (a sliding table's buckets).
    pub async fn windows(&self, key: &K, from: i64, to: i64) -> Result<Vec<Window<V>>, TableError> {
        let part = self.partition()?;
        let k = self.encode_key(key).await?;
        let g = self.cursor(&part).await?;
        let stream_time = g.as_ref().and_then(|c| c.stream_time);
        let raw = scan_key(&part, &k, from, to)?;
        drop(g);
        let mut out = Vec::new();
        for (start, b) in raw {
            if !self.spec.is_expired(start, stream_time) {
                out.push(Window {
                    start,
                    end: start.saturating_add(self.spec.span()),
                    value: self.decode_value(&b).await?,
                });
            }
        }
        Ok(out)
    }

    /// The stream time of the partition in hand: the highest event time it has seen.
    pub async fn stream_time(&self) -> Result<Option<i64>, TableError> {
        let part = self.partition()?;
        let g = self.cursor(&part).await?;
        Ok(g.as_ref().and_then(|c| c.stream_time))
    }
}

/// A windowed table read from outside its agent (the test driver, `/tables`): every
/// partition this worker holds, as stored.
pub struct WindowedView<K, V> {
    rt: Arc<TableRuntime>,
    spec: WindowSpec,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> WindowedView<K, V>
where
    K: Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    pub fn bind(rt: Arc<TableRuntime>) -> Result<Self, TableError> {
        let spec = rt
            .window
            .ok_or_else(|| TableError::NotWindowed(rt.name.to_string()))?;
        Ok(Self {
            rt,
            spec,
            _types: PhantomData,
        })
    }

    /// The windows of `key` that are not expired, oldest first.
    pub async fn windows(&self, key: &K) -> Result<Vec<Window<V>>, TableError> {
        let k = self.rt.key_codec.encode(key).await.map_err(codec_error)?;
        let Some((_, raw)) = self.rt.windows_of(&k)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for w in raw {
            out.push(Window {
                start: w.start,
                end: w.end,
                value: self
                    .rt
                    .value_codec
                    .decode(Some(&w.value))
                    .await
                    .map_err(codec_error)?,
            });
        }
        Ok(out)
    }

    /// Every (key, window start) in the stores, expired or not: what expiry left.
    pub async fn stored(&self) -> Result<Vec<(K, i64)>, TableError> {
        let mut out = Vec::new();
        for part in self.rt.held() {
            for (k, _) in all_windows(&part)? {
                if let Some((key, start)) = split_window_key(&k) {
                    let key = self
                        .rt
                        .key_codec
                        .decode(Some(key))
                        .await
                        .map_err(codec_error)?;
                    out.push((key, start));
                }
            }
        }
        Ok(out)
    }

    /// The stream time of partition `p`, as stored.
    pub fn stream_time(&self, p: i32) -> Result<Option<i64>, TableError> {
        match self.rt.partition(p) {
            Some(part) => stored_stream_time(&part),
            None => Ok(None),
        }
    }

    pub fn late_events(&self) -> u64 {
        self.rt.late_events.load(Ordering::Relaxed)
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }
}

/// What `/tables` shows of a windowed table.
#[derive(Debug, Clone, Serialize)]
pub struct WindowInfo {
    #[serde(flatten)]
    pub spec: WindowSpec,
    pub late_events: u64,
}

/// A page of a windowed table: keys (encoded) with their windows.
pub type WindowPage = Vec<(Vec<u8>, Vec<RawWindow>)>;

impl TableRuntime {
    /// The window settings and late count of a windowed table.
    pub fn window_info(&self) -> Option<WindowInfo> {
        self.window.map(|spec| WindowInfo {
            spec,
            late_events: self.late_events.load(Ordering::Relaxed),
        })
    }

    /// The partition holding `key`'s windows (encoded key) and those not expired.
    pub fn windows_of(&self, key: &[u8]) -> Result<Option<(i32, Vec<RawWindow>)>, TableError> {
        let Some(spec) = self.window else {
            return Err(TableError::NotWindowed(self.name.to_string()));
        };
        for part in self.held() {
            let st = stored_stream_time(&part)?;
            let raw = scan_key(&part, key, i64::MIN, i64::MAX)?;
            if !raw.is_empty() {
                let windows = raw
                    .into_iter()
                    .filter(|(s, _)| !spec.is_expired(*s, st))
                    .map(|(start, value)| RawWindow {
                        start,
                        end: start.saturating_add(spec.span()),
                        value,
                    })
                    .collect();
                return Ok(Some((part.partition, windows)));
            }
        }
        Ok(None)
    }

    /// Up to `limit` keys after `after` (encoded; all of them when `None`), each with
    /// its windows not expired, in store order (the windows of a key together).
    pub fn window_page(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<WindowPage, TableError> {
        let Some(spec) = self.window else {
            return Err(TableError::NotWindowed(self.name.to_string()));
        };
        let from = after.map(after_key);
        let mut keys: BTreeMap<Vec<u8>, Vec<RawWindow>> = BTreeMap::new();
        for part in self.held() {
            let st = stored_stream_time(&part)?;
            let mut cursor = from.clone();
            let mut live = 0usize;
            'scan: loop {
                let chunk = part.scan(cursor.as_deref(), 1024)?;
                let n = chunk.len();
                cursor = chunk.last().map(|(k, _)| k.clone());
                for (k, v) in chunk {
                    let Some((key, start)) = split_window_key(&k) else {
                        continue;
                    };
                    if spec.is_expired(start, st) {
                        continue;
                    }
                    if !keys.contains_key(key) {
                        // Each partition gives at most `limit` keys: enough for the
                        // page, whatever the others hold.
                        if live == limit {
                            break 'scan;
                        }
                        live += 1;
                    }
                    keys.entry(key.to_vec()).or_default().push(RawWindow {
                        start,
                        end: start.saturating_add(spec.span()),
                        value: v,
                    });
                }
                if n < 1024 {
                    break;
                }
            }
        }
        // Keys are length-prefixed in the store; the page goes in store order too.
        let mut page: Vec<(Vec<u8>, Vec<RawWindow>)> = keys.into_iter().collect();
        page.sort_by_key(|(k, _)| key_prefix(k));
        page.truncate(limit);
        Ok(page)
    }
}

/// A read-only handle on a global table that mirrors a windowed table (`mirrors =
/// "<windowed table>"`), for views: every worker holds every key's windows. Expired
/// windows leave with the tombstones expiry writes to the changelog.
pub struct GlobalWindowedTable<K, V> {
    rt: Arc<TableRuntime>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for GlobalWindowedTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            rt: self.rt.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> GlobalWindowedTable<K, V>
where
    K: Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    pub(crate) fn bind(rt: Arc<TableRuntime>) -> Result<Self, TableError> {
        if !rt.is_global() || rt.window.is_none() {
            return Err(TableError::NotAllowed {
                table: rt.name.to_string(),
                agent: "(a view)".into(),
                reason: "a windowed view reads a global table that mirrors a windowed table".into(),
            });
        }
        Ok(Self {
            rt,
            _types: PhantomData,
        })
    }

    pub fn name(&self) -> &str {
        &self.rt.name
    }

    pub fn spec(&self) -> WindowSpec {
        self.rt.window.expect("checked at bind")
    }

    /// Turns when the table applied new changes.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rt.changes()
    }

    /// The windows of `key` starting in `[from, to]`, oldest first.
    pub async fn windows(&self, key: &K, from: i64, to: i64) -> Result<Vec<Window<V>>, TableError> {
        let part = self.rt.partition(-1).ok_or_else(|| TableError::NotHeld {
            table: self.rt.name.to_string(),
            partition: -1,
        })?;
        let k = self.rt.key_codec.encode(key).await.map_err(codec_error)?;
        let span = self.spec().span();
        let mut out = Vec::new();
        for (start, value) in scan_key(&part, &k, from, to)? {
            out.push(Window {
                start,
                end: start.saturating_add(span),
                value: self
                    .rt
                    .value_codec
                    .decode(Some(&value))
                    .await
                    .map_err(codec_error)?,
            });
        }
        Ok(out)
    }

    /// The highest stream time the mirrored table's partitions reported.
    pub fn stream_time(&self) -> Result<Option<i64>, TableError> {
        match self.rt.partition(-1) {
            Some(part) => stored_stream_time(&part),
            None => Ok(None),
        }
    }
}
