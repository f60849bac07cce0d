//! The in-memory store: a sorted map per partition. Nothing survives the process — a
//! restart rebuilds it from the changelog, as Faust's `memory://` tables do.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::RwLock;

use super::{Change, Entry, KeyValueStore, StoreError};

#[derive(Default)]
struct Data {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    offsets: HashMap<i32, i64>,
}

pub struct MemoryStore {
    name: String,
    data: RwLock<Data>,
}

impl MemoryStore {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            data: RwLock::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Data> {
        // A panic while holding the lock cannot leave a half-applied batch: the batch is
        // applied after the offset is checked, with no fallible step between.
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyValueStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().entries.get(key).cloned())
    }

    fn apply(&self, changes: &[Change], p: i32, offset: i64) -> Result<(), StoreError> {
        let mut d = self.write();
        for (k, v) in changes {
            match v {
                Some(v) => d.entries.insert(k.clone(), v.clone()),
                None => d.entries.remove(k),
            };
        }
        d.offsets.insert(p, offset);
        Ok(())
    }

    fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let d = self.read();
        let from = match after {
            Some(a) => Bound::Excluded(a.to_vec()),
            None => Bound::Unbounded,
        };
        Ok(d.entries
            .range((from, Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn count_keys(&self) -> Result<u64, StoreError> {
        Ok(self.read().entries.len() as u64)
    }

    fn changelog_offset(&self, p: i32) -> Result<Option<i64>, StoreError> {
        Ok(self.read().offsets.get(&p).copied())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        *self.write() = Data::default();
        Ok(())
    }

    fn describe(&self) -> String {
        format!("in-memory store {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_store_keeps_the_store_contract() {
        super::super::contract::check(&MemoryStore::new("t-0"));
    }
}
