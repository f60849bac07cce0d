//! Table state as layers of byte-level key/value stores, as Kafka Streams builds them
//! (metered → caching → change-logging → RocksDB):
//!
//! * [`KeyValueStore`]: the contract every layer keeps — bytes in, bytes out, plus the
//!   changelog offset applied with each batch, so a store is always a consistent prefix of
//!   its changelog;
//! * [`rocks::RocksStore`] and [`memory::MemoryStore`]: where the bytes live
//!   (`store.backend`);
//! * [`caching::CachingStore`]: an optional read cache in front (`store.cache_entries`);
//! * [`metered::MeteredStore`]: counts and times each operation (`/tables`, `/metrics`);
//! * the change-logging layer is [`crate::table::TablePartition`]: it stages a write,
//!   sends it to the changelog and applies it here once the broker has it.
//!
//! [`crate::table::Table`] above them only types and routes.

pub mod caching;
pub mod memory;
pub mod metered;
pub mod rocks;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use thiserror::Error;

pub use caching::CachingStore;
pub use memory::MemoryStore;
pub use metered::{MeteredStore, StoreMeter};
pub use rocks::{RocksEnv, RocksStore};

pub use crate::settings::StoreBackend as Backend;

/// One change to apply: `None` deletes the key.
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// Encoded key and value.
pub type Entry = (Vec<u8>, Vec<u8>);

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("RocksDB store {path}: {message}")]
    Rocks { path: String, message: String },
}

/// What a backend can tell of its memory (RocksDB's properties; zeros elsewhere).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StoreStats {
    pub estimated_keys: u64,
    pub memtable_bytes: u64,
    pub table_reader_bytes: u64,
}

/// A key/value store of bytes that remembers, per changelog partition, the offset of the
/// last change applied. Keys scan in byte order.
pub trait KeyValueStore: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies `changes` and records `offset` of changelog partition `p` as applied,
    /// atomically: after a crash the store holds all of it or none of it.
    fn apply(&self, changes: &[Change], p: i32, offset: i64) -> Result<(), StoreError>;
    /// Up to `limit` entries in key order, after `after` (exclusive) when given.
    fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError>;
    /// Exact number of keys (a full scan on RocksDB: for tests and small tables).
    fn count_keys(&self) -> Result<u64, StoreError>;
    /// The offset of the last change applied from changelog partition `p`.
    fn changelog_offset(&self, p: i32) -> Result<Option<i64>, StoreError>;
    /// Persists what is in memory, so a clean restart replays nothing.
    fn flush(&self) -> Result<(), StoreError>;
    /// Removes every entry and offset (a full rebuild follows), in place, so that readers
    /// holding the store keep a valid, if empty, store.
    fn clear(&self) -> Result<(), StoreError>;
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }
    /// Where it is, for messages.
    fn describe(&self) -> String;
}

/// The store of one table partition, with the layers the settings ask for.
pub type SharedStore = Arc<dyn KeyValueStore>;

/// Opens the stores of a worker: the backend and the layers, from the settings.
#[derive(Clone)]
pub struct StoreFactory {
    pub backend: Backend,
    /// RocksDB's shared block cache and write buffers (unused by the memory backend).
    pub rocks: RocksEnv,
    /// Entries of the read cache per partition; 0: none.
    pub cache_entries: usize,
}

impl StoreFactory {
    pub fn new(backend: Backend, block_cache_bytes: usize, write_buffer_bytes: usize) -> Self {
        Self {
            backend,
            rocks: RocksEnv::new(block_cache_bytes, write_buffer_bytes),
            cache_entries: 0,
        }
    }

    /// The store of a partition at `path` (RocksDB), metered, with a read cache when
    /// `cache_entries` is set.
    pub fn open(&self, path: &Path, meter: Arc<StoreMeter>) -> Result<SharedStore, StoreError> {
        let base: Box<dyn KeyValueStore> = match self.backend {
            Backend::Rocksdb => Box::new(RocksStore::open(&self.rocks, path)?),
            Backend::Memory => Box::new(MemoryStore::new(path.display().to_string())),
        };
        let cached: Box<dyn KeyValueStore> = if self.cache_entries > 0 {
            Box::new(CachingStore::new(base, self.cache_entries))
        } else {
            base
        };
        Ok(Arc::new(MeteredStore::new(cached, meter)))
    }

    pub fn memory_usage(&self) -> usize {
        match self.backend {
            Backend::Rocksdb => self.rocks.memory_usage(),
            Backend::Memory => 0,
        }
    }

    pub fn pinned_usage(&self) -> usize {
        match self.backend {
            Backend::Rocksdb => self.rocks.pinned_usage(),
            Backend::Memory => 0,
        }
    }
}

/// The contract of [`KeyValueStore`], run against every backend and layer.
#[cfg(test)]
pub(crate) mod contract {
    use super::*;

    pub fn check(s: &dyn KeyValueStore) {
        assert_eq!(s.changelog_offset(0).unwrap(), None);
        s.apply(
            &[
                (b"a".to_vec(), Some(b"1".to_vec())),
                (b"b".to_vec(), Some(b"2".to_vec())),
            ],
            0,
            7,
        )
        .unwrap();
        assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
        s.apply(&[(b"a".to_vec(), None)], 0, 8).unwrap();
        s.apply(&[], 3, 100).unwrap();
        assert_eq!(s.changelog_offset(0).unwrap(), Some(8));
        assert_eq!(s.changelog_offset(3).unwrap(), Some(100));
        assert_eq!(s.count_keys().unwrap(), 1);
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
        s.clear().unwrap();
        assert_eq!(s.count_keys().unwrap(), 0);
        assert_eq!(s.changelog_offset(0).unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), None);

        let changes: Vec<Change> = (0..10u8).map(|i| (vec![b'k', i], Some(vec![i]))).collect();
        s.apply(&changes, 0, 1).unwrap();
        let first = s.scan(None, 4).unwrap();
        assert_eq!(first.len(), 4);
        assert_eq!(first[0].0, vec![b'k', 0]);
        let next = s.scan(Some(&first[3].0), 100).unwrap();
        assert_eq!(next.len(), 6);
        assert_eq!(next[0].0, vec![b'k', 4]);
        s.clear().unwrap();
    }
}
