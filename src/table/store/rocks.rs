//! The RocksDB store: one database per (table, partition). Data keys are stored under a
//! one-byte prefix, the last applied changelog offset under a reserved key, and both
//! change in the same `WriteBatch`: a store is always a consistent prefix of its
//! changelog. The WAL is off — the changelog is the log — so a crash loses at most the
//! unflushed tail, which recovery replays from the stored offset.

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, Cache, Options, WriteBatch, WriteBufferManager, WriteOptions, DB,
};

use super::{Change, Entry, KeyValueStore, StoreError, StoreStats};

const DATA: u8 = 1;
const META: u8 = 0;

/// The key under which the last applied offset of changelog partition `p` is kept (a
/// global table holds every partition in one store).
fn offset_key(p: i32) -> Vec<u8> {
    let mut k = vec![META];
    k.extend_from_slice(b"offset/");
    k.extend_from_slice(&p.to_be_bytes());
    k
}

/// What every store of the process shares, so memory is bounded whatever the number of
/// partitions: one block cache, one write-buffer budget.
#[derive(Clone)]
pub struct RocksEnv {
    cache: Cache,
    write_buffers: WriteBufferManager,
    pub block_cache_bytes: usize,
    pub write_buffer_bytes: usize,
}

impl RocksEnv {
    pub fn new(block_cache_bytes: usize, write_buffer_bytes: usize) -> Self {
        let cache = Cache::new_lru_cache(block_cache_bytes);
        // Memtables are charged to the same cache, so the two budgets are one bound.
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            write_buffer_bytes,
            false,
            cache.clone(),
        );
        Self {
            cache,
            write_buffers,
            block_cache_bytes,
            write_buffer_bytes,
        }
    }

    fn options(&self) -> Options {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.set_write_buffer_manager(&self.write_buffers);
        o.set_write_buffer_size(8 * 1024 * 1024);
        o.set_max_write_buffer_number(2);
        o.set_max_open_files(64);
        o.set_keep_log_file_num(2);
        o.set_max_log_file_size(1024 * 1024);
        o.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let mut t = BlockBasedOptions::default();
        t.set_block_cache(&self.cache);
        t.set_cache_index_and_filter_blocks(true);
        t.set_bloom_filter(10.0, false);
        o.set_block_based_table_factory(&t);
        o
    }

    /// Bytes the shared cache holds now (blocks and charged memtables).
    pub fn memory_usage(&self) -> usize {
        self.cache.get_usage()
    }

    /// Bytes of the shared cache pinned by readers (cannot be evicted now).
    pub fn pinned_usage(&self) -> usize {
        self.cache.get_pinned_usage()
    }
}

pub struct RocksStore {
    db: DB,
    path: PathBuf,
    write: WriteOptions,
}

impl RocksStore {
    pub fn open(env: &RocksEnv, path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| err(path, e))?;
        let db = DB::open(&env.options(), path).map_err(|e| err(path, e))?;
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        Ok(Self {
            db,
            path: path.to_path_buf(),
            write,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn int_property(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }
}

impl KeyValueStore for RocksStore {
    /// The offset of the last record applied from changelog partition `p`.
    fn changelog_offset(&self, p: i32) -> Result<Option<i64>, StoreError> {
        let v = self
            .db
            .get_pinned(offset_key(p))
            .map_err(|e| err(&self.path, e))?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(&b[..]).ok().map(i64::from_be_bytes)))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let k = data_key(key);
        self.db
            .get_pinned(&k)
            .map(|v| v.map(|s| s.to_vec()))
            .map_err(|e| err(&self.path, e))
    }

    /// Applies `changes` and records `offset` of changelog partition `p` as applied,
    /// atomically.
    fn apply(&self, changes: &[Change], p: i32, offset: i64) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (k, v) in changes {
            let key = data_key(k);
            match v {
                Some(v) => batch.put(&key, v),
                None => batch.delete(&key),
            }
        }
        batch.put(offset_key(p), offset.to_be_bytes());
        self.db
            .write_opt(batch, &self.write)
            .map_err(|e| err(&self.path, e))
    }

    /// Up to `limit` entries in key order, after `after` (exclusive) when given.
    fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let mut it = self.db.raw_iterator();
        match after {
            Some(a) => {
                let k = data_key(a);
                it.seek(&k);
                if it.valid() && it.key() == Some(&k[..]) {
                    it.next();
                }
            }
            None => it.seek([DATA]),
        }
        let mut out = Vec::new();
        while it.valid() && out.len() < limit {
            match (it.key(), it.value()) {
                (Some(k), Some(v)) if k.first() == Some(&DATA) => {
                    out.push((k[1..].to_vec(), v.to_vec()))
                }
                _ => break,
            }
            it.next();
        }
        it.status().map_err(|e| err(&self.path, e))?;
        Ok(out)
    }

    /// Exact number of data keys (a full scan: for tests and small tables).
    fn count_keys(&self) -> Result<u64, StoreError> {
        let mut it = self.db.raw_iterator();
        it.seek([DATA]);
        let mut n = 0;
        while it.valid() && it.key().and_then(|k| k.first()) == Some(&DATA) {
            n += 1;
            it.next();
        }
        it.status().map_err(|e| err(&self.path, e))?;
        Ok(n)
    }

    /// Persists memtables, so a clean restart replays nothing.
    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| err(&self.path, e))
    }

    /// Removes every entry and offset (a full rebuild follows). Done in place, so that
    /// readers holding the store keep a valid, if empty, database.
    fn clear(&self) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.delete_range([META], [DATA + 1]);
        self.db
            .write_opt(batch, &self.write)
            .map_err(|e| err(&self.path, e))?;
        self.db.compact_range(None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }
    fn stats(&self) -> StoreStats {
        StoreStats {
            estimated_keys: self.int_property("rocksdb.estimate-num-keys"),
            memtable_bytes: self.int_property("rocksdb.cur-size-all-mem-tables"),
            table_reader_bytes: self.int_property("rocksdb.estimate-table-readers-mem"),
        }
    }

    fn describe(&self) -> String {
        format!("RocksDB at {}", self.path.display())
    }
}

fn data_key(k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(k.len() + 1);
    v.push(DATA);
    v.extend_from_slice(k);
    v
}

fn err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Rocks {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rocksdb_store_keeps_the_store_contract_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let env = RocksEnv::new(8 << 20, 4 << 20);
        {
            let s = RocksStore::open(&env, dir.path()).unwrap();
            super::super::contract::check(&s);
            s.apply(&[(b"kept".to_vec(), Some(b"1".to_vec()))], 0, 41)
                .unwrap();
            s.flush().unwrap();
        }
        let s = RocksStore::open(&env, dir.path()).unwrap();
        assert_eq!(s.changelog_offset(0).unwrap(), Some(41));
        assert_eq!(s.get(b"kept").unwrap(), Some(b"1".to_vec()));
    }
}
