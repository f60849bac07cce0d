//! A table partition held by this worker, and the change-logging layer of its store: the
//! writes staged while their changelog records are on the way, and its recovery progress.
//!
//! A write is staged at once (so the agent reads its own writes), sent to the changelog,
//! and applied to the store below (metered, cached, RocksDB or memory), together with its
//! changelog offset, when the broker has the record. The store thus never holds a write
//! the changelog does not.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::store::{Change, Entry, SharedStore, StoreError};
use crate::stream::ack::AckToken;
use crate::stream::sink::{DeliveryObserver, DeliveryTag, EnqueueError, OutRecord, RecordSink};

/// Writes on their way to the changelog: key → (sequence, value; `None` = removal).
type Staged = HashMap<Vec<u8>, (u64, Option<Vec<u8>>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryState {
    Pending,
    Recovering,
    Ready,
    Failed,
}

/// Progress of bringing a partition up to its changelog's end.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryProgress {
    pub state: RecoveryState,
    /// Offset recovery started from, and the changelog's end when it started.
    pub from_offset: i64,
    pub end_offset: i64,
    /// Records read from the changelog by this recovery.
    pub records: u64,
    /// Full rebuild (no usable local store) rather than replay of the tail.
    pub full: bool,
    pub elapsed_ms: u64,
    pub eta_ms: Option<u64>,
    pub error: Option<String>,
}

impl Default for RecoveryProgress {
    fn default() -> Self {
        Self {
            state: RecoveryState::Pending,
            from_offset: 0,
            end_offset: 0,
            records: 0,
            full: false,
            elapsed_ms: 0,
            eta_ms: None,
            error: None,
        }
    }
}

pub struct TablePartition {
    pub table: Arc<str>,
    pub partition: i32,
    store: RwLock<Option<SharedStore>>,
    staged: Mutex<Staged>,
    seq: AtomicU64,
    closed: AtomicBool,
    progress: Mutex<(RecoveryProgress, Option<Instant>)>,
    /// Under exactly-once, writes are persisted at transaction commit, not on delivery.
    transactional: bool,
    /// Highest changelog offset delivered in the open transaction.
    delivered: std::sync::atomic::AtomicI64,
    /// A windowed table's stream time and window index, loaded from the store on first
    /// use; held for a whole update, so that updates of a partition never interleave.
    pub(crate) windows: tokio::sync::Mutex<Option<super::windowed::WindowCursor>>,
    /// Bumped whenever staged writes are dropped (a lost changelog record, an aborted
    /// transaction): what was derived from them in memory must be loaded again.
    generation: AtomicU64,
}

impl TablePartition {
    pub fn new(table: Arc<str>, partition: i32, store: SharedStore, transactional: bool) -> Self {
        Self {
            table,
            partition,
            store: RwLock::new(Some(store)),
            staged: Mutex::default(),
            seq: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            progress: Mutex::default(),
            transactional,
            delivered: std::sync::atomic::AtomicI64::new(-1),
            windows: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// Changes whenever staged writes were dropped.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn store(&self) -> Option<SharedStore> {
        self.store.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, Staged> {
        self.staged.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some((_, v)) = self.staged().get(key) {
            return Ok(v.clone());
        }
        match self.store() {
            Some(s) => s.get(key),
            None => Ok(None),
        }
    }

    /// Writes `key` (`None`: removes it): staged at once, sent to `changelog` through
    /// `sink` with the event's `token`, applied to the store once delivered (under
    /// exactly-once, once the transaction commits).
    pub async fn write(
        self: &Arc<Self>,
        sink: &dyn RecordSink,
        changelog: &str,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        token: Option<AckToken>,
        observer: Arc<dyn DeliveryObserver>,
    ) -> Result<(), EnqueueError> {
        let seq = self.stage(key.clone(), value.clone());
        let rec = OutRecord {
            topic: changelog.to_string(),
            partition: Some(self.partition),
            key: Some(key.clone()),
            value: value.clone(),
            ..OutRecord::default()
        };
        let applied = self.clone();
        let staged_key = key;
        let tag = DeliveryTag {
            token,
            observer: Some(observer),
            on_delivery: Some(Box::new(move |result| match result {
                Ok(offset) => applied.applied(&staged_key, value.as_deref(), offset, seq),
                Err(_) => applied.unstage(&staged_key, seq),
            })),
        };
        if let Err(e) = sink.send(&rec, tag).await {
            // The tag (and its unstaging) was dropped with the record: unstage here.
            if let Some(k) = rec.key.as_deref() {
                self.unstage(k, seq);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Stages a write; returns its sequence number for `applied`.
    pub fn stage(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.staged().insert(key, (seq, value));
        seq
    }

    /// The changelog has the write at `offset`: persist it and unstage it unless a later
    /// write of the same key is still on the way.
    pub fn applied(&self, key: &[u8], value: Option<&[u8]>, offset: i64, seq: u64) {
        if self.transactional {
            self.delivered.fetch_max(offset, Ordering::AcqRel);
            return;
        }
        if let Some(store) = self.store() {
            let change = (key.to_vec(), value.map(<[u8]>::to_vec));
            if let Err(e) = store.apply(std::slice::from_ref(&change), self.partition, offset) {
                // The changelog has it; the next recovery of this partition will too.
                tracing::error!(table = %self.table, partition = self.partition, "{e}");
            }
        }
        let mut staged = self.staged();
        if matches!(staged.get(key), Some((s, _)) if *s == seq) {
            staged.remove(key);
        }
    }

    /// A staged write whose changelog record was lost: forget it (its event comes again).
    pub fn unstage(&self, key: &[u8], seq: u64) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut staged = self.staged();
        if matches!(staged.get(key), Some((s, _)) if *s == seq) {
            staged.remove(key);
        }
    }

    /// Drops every staged write (a transaction was aborted).
    pub fn discard_staged(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.staged().clear();
        self.delivered.store(-1, Ordering::Release);
    }

    /// The transaction that carried the staged writes committed: persist them with the
    /// last changelog offset it delivered.
    pub fn commit_staged(&self) {
        let changes: Vec<Change> = self.staged().drain().map(|(k, (_, v))| (k, v)).collect();
        let offset = self.delivered.swap(-1, Ordering::AcqRel);
        if changes.is_empty() || offset < 0 {
            return;
        }
        if let Some(store) = self.store() {
            if let Err(e) = store.apply(&changes, self.partition, offset) {
                tracing::error!(table = %self.table, partition = self.partition, "{e}");
            }
        }
    }

    /// Exact number of keys, staged writes included, so the count agrees with `get`.
    pub fn count_keys(&self) -> Result<u64, StoreError> {
        let staged: Vec<(Vec<u8>, bool)> = self
            .staged()
            .iter()
            .map(|(k, (_, v))| (k.clone(), v.is_some()))
            .collect();
        let Some(store) = self.store() else {
            return Ok(staged.iter().filter(|(_, live)| *live).count() as u64);
        };
        let mut n = store.count_keys()? as i64;
        for (k, live) in staged {
            let stored = store.get(&k)?.is_some();
            n += i64::from(live) - i64::from(stored);
        }
        Ok(n.max(0) as u64)
    }

    /// Up to `limit` entries after `after`, staged writes included.
    pub fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let staged: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .staged()
            .iter()
            .filter(|(k, _)| after.is_none_or(|a| k.as_slice() > a))
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect();
        let from_store = match self.store() {
            Some(s) => s.scan(after, limit + staged.len())?,
            None => Vec::new(),
        };
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = from_store.into_iter().collect();
        for (k, v) in staged {
            match v {
                Some(v) => merged.insert(k, v),
                None => merged.remove(&k),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    /// Flushes and closes the store (on revoke or shutdown); later writes are dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let store = self.store.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = store {
            if let Err(e) = s.flush() {
                tracing::warn!(table = %self.table, partition = self.partition, "flush on close: {e}");
            }
        }
    }

    pub fn set_progress(&self, f: impl FnOnce(&mut RecoveryProgress)) {
        let mut g = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        if g.1.is_none() {
            g.1 = Some(Instant::now());
        }
        f(&mut g.0);
        let elapsed = g.1.map(|t| t.elapsed()).unwrap_or(Duration::ZERO);
        if g.0.state == RecoveryState::Recovering {
            g.0.elapsed_ms = elapsed.as_millis() as u64;
            let todo = (g.0.end_offset - g.0.from_offset).max(0) as u64;
            let done = g.0.records.min(todo);
            g.0.eta_ms =
                (done > 0).then(|| (elapsed.as_millis() as u64).saturating_mul(todo - done) / done);
        }
    }

    pub fn progress(&self) -> RecoveryProgress {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    pub fn is_ready(&self) -> bool {
        self.progress().state == RecoveryState::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::store::MemoryStore;

    #[test]
    fn staged_writes_count_and_scan_like_reads_do() {
        let part = TablePartition::new("t".into(), 0, Arc::new(MemoryStore::new("t-0")), false);
        let a = part.stage(b"a".to_vec(), Some(b"1".to_vec()));
        part.applied(b"a", Some(b"1"), 0, a);
        part.stage(b"b".to_vec(), Some(b"2".to_vec()));
        part.stage(b"a".to_vec(), Some(b"3".to_vec()));
        assert_eq!(
            part.count_keys().unwrap(),
            2,
            "b staged, a stored and restaged"
        );
        assert_eq!(part.get(b"a").unwrap(), Some(b"3".to_vec()));
        part.stage(b"a".to_vec(), None);
        assert_eq!(part.count_keys().unwrap(), 1, "a staged for removal");
        let keys: Vec<_> = part
            .scan(None, 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"b".to_vec()]);
    }
}
