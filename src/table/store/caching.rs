//! The caching layer: a bounded read cache (least recently used out first) in front of a
//! store, for tables whose hot keys are read far more often than written. Writes go
//! through to the store and update the cache, so a read never sees an older value than
//! the store holds. Misses are cached too: a table is often asked for keys it lacks.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use super::{Change, Entry, KeyValueStore, StoreError, StoreStats};

pub struct CachingStore {
    inner: Box<dyn KeyValueStore>,
    cache: Mutex<LruCache<Vec<u8>, Option<Vec<u8>>>>,
}

impl CachingStore {
    pub fn new(inner: Box<dyn KeyValueStore>, entries: usize) -> Self {
        let cap = NonZeroUsize::new(entries.max(1)).expect("at least one entry");
        Self {
            inner,
            cache: Mutex::new(LruCache::new(cap)),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<Vec<u8>, Option<Vec<u8>>>> {
        // The cache only ever holds values the store held: a poisoned one is still right.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyValueStore for CachingStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.cache().get(key) {
            return Ok(v.clone());
        }
        let v = self.inner.get(key)?;
        self.cache().put(key.to_vec(), v.clone());
        Ok(v)
    }

    fn apply(&self, changes: &[Change], p: i32, offset: i64) -> Result<(), StoreError> {
        let applied = self.inner.apply(changes, p, offset);
        let mut cache = self.cache();
        for (k, v) in changes {
            if applied.is_ok() {
                cache.put(k.clone(), v.clone());
            } else {
                cache.pop(k);
            }
        }
        applied
    }

    fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError> {
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
        self.cache().clear();
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
    fn the_cache_keeps_the_store_contract_even_when_tiny() {
        super::super::contract::check(&CachingStore::new(Box::new(MemoryStore::new("t")), 1));
        super::super::contract::check(&CachingStore::new(Box::new(MemoryStore::new("t")), 64));
    }

    #[test]
    fn a_cached_miss_is_replaced_by_a_write() {
        let s = CachingStore::new(Box::new(MemoryStore::new("t")), 8);
        assert_eq!(s.get(b"k").unwrap(), None);
        s.apply(&[(b"k".to_vec(), Some(b"v".to_vec()))], 0, 1)
            .unwrap();
        assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
        s.clear().unwrap();
        assert_eq!(s.get(b"k").unwrap(), None);
    }
}
