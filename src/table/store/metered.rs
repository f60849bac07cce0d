//! The metering layer: counts each operation of a table's stores and the time reads
//! take, for `/tables` and `/metrics` (Kafka Streams' `MeteredKeyValueStore`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::{Change, Entry, KeyValueStore, StoreError, StoreStats};

/// The counters of one table, shared by its partitions' stores.
#[derive(Debug, Default)]
pub struct StoreMeter {
    gets: AtomicU64,
    get_nanos: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    batches: AtomicU64,
    scans: AtomicU64,
}

/// A reading of a [`StoreMeter`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct MeterReading {
    pub gets: u64,
    pub get_nanos: u64,
    pub puts: u64,
    pub deletes: u64,
    pub batches: u64,
    pub scans: u64,
}

impl StoreMeter {
    pub fn reading(&self) -> MeterReading {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MeterReading {
            gets: r(&self.gets),
            get_nanos: r(&self.get_nanos),
            puts: r(&self.puts),
            deletes: r(&self.deletes),
            batches: r(&self.batches),
            scans: r(&self.scans),
        }
    }
}

pub struct MeteredStore {
    inner: Box<dyn KeyValueStore>,
    meter: Arc<StoreMeter>,
}

impl MeteredStore {
    pub fn new(inner: Box<dyn KeyValueStore>, meter: Arc<StoreMeter>) -> Self {
        Self { inner, meter }
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl KeyValueStore for MeteredStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = Instant::now();
        let v = self.inner.get(key);
        add(&self.meter.gets, 1);
        add(&self.meter.get_nanos, t.elapsed().as_nanos() as u64);
        v
    }

    fn apply(&self, changes: &[Change], p: i32, offset: i64) -> Result<(), StoreError> {
        let deletes = changes.iter().filter(|(_, v)| v.is_none()).count() as u64;
        add(&self.meter.puts, changes.len() as u64 - deletes);
        add(&self.meter.deletes, deletes);
        add(&self.meter.batches, 1);
        self.inner.apply(changes, p, offset)
    }

    fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        add(&self.meter.scans, 1);
        self.inner.scan(after, limit)
    }

    fn count_keys(&self) -> Result<u64, StoreError> {
        self.inner.count_keys()
    }

    fn changelog_offset(&self, p: i32) -> Result<Option<i64>, StoreError> {
        self.inner.changelog_offset(p)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.inner.clear()
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::store::MemoryStore;

    #[test]
    fn the_meter_counts_what_passes_and_changes_nothing() {
        let meter = Arc::new(StoreMeter::default());
        let s = MeteredStore::new(Box::new(MemoryStore::new("t")), meter.clone());
        super::super::contract::check(&s);
        let r = meter.reading();
        assert_eq!((r.puts, r.deletes, r.batches, r.scans), (12, 1, 4, 2));
        assert_eq!(r.gets, 4);
    }
}
