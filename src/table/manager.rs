//! The tables of a worker: which partitions it holds, opening and closing their stores
//! as partitions come and go, recovery, and the followers of global tables.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::watch;

use super::decl::TableDecl;
use super::partition::{RecoveryProgress, RecoveryState, TablePartition};
use super::recovery::{recover, ReaderConsumer, ReaderContext, RecoverySpec};
use super::store::{Change, StoreFactory, StoreMeter};
use super::window::WindowSpec;
use super::TableError;
use crate::codec::{codec_for, Codec, Part};
use crate::kafka::client::{client_config, ClientKind};
use crate::kafka::names::{self, Names};
use crate::settings::{Settings, TableSettings};

/// One table of the worker.
pub struct TableRuntime {
    pub name: Arc<str>,
    pub decl: TableDecl,
    pub settings: TableSettings,
    pub changelog: String,
    /// The topic a global table follows (its changelog unless told otherwise).
    pub source_topic: String,
    pub partitions: i32,
    pub key_codec: Codec,
    pub value_codec: Codec,
    held: RwLock<BTreeMap<i32, Arc<TablePartition>>>,
    dir: PathBuf,
    transactional: bool,
    /// Operations on the table's stores, all partitions together.
    pub meter: Arc<StoreMeter>,
    /// Bumped whenever a global table applies changes, for views that push updates.
    version: watch::Sender<u64>,
    /// The windows of a windowed table (`tables.<name>.window`).
    pub window: Option<WindowSpec>,
    /// Events too late for a windowed table's windows, since the worker started.
    pub late_events: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    pub partition: i32,
    pub keys: u64,
    pub recovery: RecoveryProgress,
    /// A windowed table's stream time: the highest event time the partition has seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_time: Option<i64>,
}

impl TableRuntime {
    pub fn is_global(&self) -> bool {
        self.settings.global
    }

    /// Changes with every batch a global table applies (the value counts them).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn store_path(&self, partition: i32) -> PathBuf {
        let partition = (!self.is_global()).then_some(partition);
        self.dir.join(names::store_dir(&self.name, partition))
    }

    /// The partition this worker holds, if it does.
    pub fn partition(&self, p: i32) -> Option<Arc<TablePartition>> {
        self.held
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p)
            .cloned()
    }

    pub fn held(&self) -> Vec<Arc<TablePartition>> {
        self.held
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Opens the store of partition `p` (recovery is the caller's next step).
    pub fn open(&self, stores: &StoreFactory, p: i32) -> Result<Arc<TablePartition>, TableError> {
        let store = stores.open(&self.store_path(p), self.meter.clone())?;
        let part = Arc::new(TablePartition::new(
            self.name.clone(),
            p,
            store,
            self.transactional,
        ));
        if let Some(old) = self
            .held
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p, part.clone())
        {
            old.close();
        }
        Ok(part)
    }

    /// Flushes and closes partition `p` (revoked, or shutdown).
    pub fn close(&self, p: i32) {
        let part = self
            .held
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p);
        if let Some(part) = part {
            part.close();
        }
    }

    pub fn close_all(&self) {
        let all: Vec<i32> = self
            .held
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        for p in all {
            self.close(p);
        }
    }

    pub fn info(&self) -> Vec<PartitionInfo> {
        self.held()
            .iter()
            .map(|part| {
                let keys = part.count_keys().unwrap_or(0);
                let stream_time = self
                    .window
                    .and_then(|_| super::windowed::stored_stream_time(part).ok().flatten());
                PartitionInfo {
                    partition: part.partition,
                    // The stream time is kept under a key of its own: not an entry.
                    keys: keys.saturating_sub(u64::from(stream_time.is_some())),
                    recovery: part.progress(),
                    stream_time,
                }
            })
            .collect()
    }
}

/// All tables of the worker and the memory they share.
pub struct TableManager {
    pub stores: StoreFactory,
    pub settings: Arc<Settings>,
    tables: BTreeMap<String, Arc<TableRuntime>>,
}

impl TableManager {
    pub fn new(
        settings: Arc<Settings>,
        decls: &super::decl::TableRegistry,
        registry: Option<&Arc<crate::codec::SchemaRegistryClient>>,
    ) -> Result<Self, TableError> {
        let mut stores = StoreFactory::new(
            settings.store.backend,
            settings.store.block_cache_mb << 20,
            settings.store.write_buffer_mb << 20,
        );
        stores.cache_entries = settings.store.cache_entries;
        let dir = settings.state_dir().join("tables");
        let mut tables = BTreeMap::new();
        for (name, t) in &settings.tables {
            let decl = *decls
                .get(name)
                .ok_or_else(|| TableError::Undeclared(name.clone()))?;
            let changelog = Names::new(&settings).changelog_topic(name);
            let source_topic = Names::new(&settings).global_source_topic(name);
            let codec = |kind, part| {
                codec_for(kind, &changelog, part, None, registry)
                    .map_err(|e| TableError::Codec(e.to_string()))
            };
            tables.insert(
                name.clone(),
                Arc::new(TableRuntime {
                    name: Arc::from(name.as_str()),
                    decl,
                    settings: t.clone(),
                    partitions: settings.table_partitions(name),
                    key_codec: codec(t.key_codec, Part::Key)?,
                    value_codec: codec(t.value_codec, Part::Value)?,
                    changelog,
                    source_topic,
                    held: RwLock::default(),
                    dir: dir.clone(),
                    transactional: settings.app.processing_guarantee
                        == crate::settings::ProcessingGuarantee::ExactlyOnce,
                    version: watch::channel(0).0,
                    meter: Arc::default(),
                    // A mirror of a windowed table holds its windows, read by views.
                    window: t
                        .window
                        .as_ref()
                        .or_else(|| {
                            t.mirrors
                                .as_ref()
                                .and_then(|m| settings.tables.get(m))
                                .and_then(|m| m.window.as_ref())
                        })
                        .map(WindowSpec::from_settings),
                    late_events: AtomicU64::new(0),
                }),
            );
        }
        Ok(Self {
            stores,
            settings,
            tables,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<TableRuntime>> {
        self.tables.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<TableRuntime>> {
        self.tables.values()
    }

    /// The tables written by `agent`.
    pub fn of_agent(&self, agent: &str) -> Vec<Arc<TableRuntime>> {
        self.tables
            .values()
            .filter(|t| t.settings.agent.as_deref() == Some(agent))
            .cloned()
            .collect()
    }

    /// Opens and recovers partition `p` of `table` (blocking: run it off the runtime).
    pub fn assign_blocking(&self, table: &TableRuntime, p: i32) -> Result<u64, TableError> {
        let part = table.open(&self.stores, p)?;
        let spec = RecoverySpec {
            settings: &self.settings,
            changelog: &table.changelog,
        };
        match recover(&spec, &part) {
            Ok(n) => {
                part.set_progress(|g| {
                    g.state = if part.is_closed() {
                        RecoveryState::Pending
                    } else {
                        RecoveryState::Ready
                    };
                    g.eta_ms = Some(0);
                });
                Ok(n)
            }
            Err(e) => {
                part.set_progress(|g| {
                    g.state = RecoveryState::Failed;
                    g.error = Some(e.to_string());
                });
                Err(e)
            }
        }
    }

    pub fn close_all(&self) {
        for t in self.tables.values() {
            t.close_all();
        }
    }

    /// A transaction committed: persist the staged writes of every partition.
    pub fn commit_staged(&self) {
        for t in self.tables.values().filter(|t| !t.is_global()) {
            for part in t.held() {
                part.commit_staged();
            }
        }
    }

    /// A transaction was aborted: drop the staged writes of every partition.
    pub fn discard_staged(&self) {
        for t in self.tables.values().filter(|t| !t.is_global()) {
            for part in t.held() {
                part.discard_staged();
            }
        }
    }

    /// Flushes every held store; run every `store.flush_interval`.
    pub fn flush_all(&self) {
        for t in self.tables.values() {
            for part in t.held() {
                if let Some(s) = part.store() {
                    if let Err(e) = s.flush() {
                        tracing::warn!(table = %t.name, partition = part.partition, "periodic flush: {e}");
                    }
                }
            }
        }
    }

    /// Bytes held by the shared block cache and memtables.
    pub fn memory_usage(&self) -> usize {
        self.stores.memory_usage()
    }

    /// What RocksDB holds in memory for every table partition of this worker.
    pub fn memory(&self) -> StoreMemory {
        let stores: Vec<_> = self
            .all()
            .flat_map(|t| t.held())
            .filter_map(|p| p.store())
            .collect();
        StoreMemory {
            cache_bytes: self.stores.memory_usage() as u64,
            cache_pinned_bytes: self.stores.pinned_usage() as u64,
            cache_capacity_bytes: self.stores.rocks.block_cache_bytes as u64,
            memtable_bytes: stores.iter().map(|s| s.stats().memtable_bytes).sum(),
            table_reader_bytes: stores.iter().map(|s| s.stats().table_reader_bytes).sum(),
            stores: stores.len(),
        }
    }
}

/// RocksDB's memory in this worker. Memtables are charged to the shared cache, so
/// `cache_bytes` includes `memtable_bytes`; `table_reader_bytes` is outside it.
#[derive(Debug, Clone, Serialize)]
pub struct StoreMemory {
    pub cache_bytes: u64,
    pub cache_pinned_bytes: u64,
    pub cache_capacity_bytes: u64,
    pub memtable_bytes: u64,
    pub table_reader_bytes: u64,
    pub stores: usize,
}

/// Keeps a global table up to date with its source topic, every partition, for as long
/// as the worker runs. Returns once the table has caught up with the end offsets seen at
/// start (so agents start on a whole table); the following goes on in the background.
pub async fn start_global(
    manager: Arc<TableManager>,
    table: Arc<TableRuntime>,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, TableError> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let handle = tokio::task::spawn_blocking(move || {
        let mut ready = Some(ready_tx);
        if let Err(e) = follow(&manager, &table, shutdown, &mut ready) {
            match ready.take() {
                Some(r) => {
                    let _ = r.send(Err(e));
                }
                None => tracing::error!(table = %table.name, "global table follower stopped: {e}"),
            }
        }
    });
    match ready_rx.await {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(TableError::Closed),
    }
}

type Ready = Option<tokio::sync::oneshot::Sender<Result<(), TableError>>>;

fn follow(
    manager: &TableManager,
    table: &TableRuntime,
    shutdown: watch::Receiver<bool>,
    ready: &mut Ready,
) -> Result<(), TableError> {
    let part = table.open(&manager.stores, -1)?;
    let mut cfg = client_config(&manager.settings, ClientKind::Consumer);
    cfg.remove("partition.assignment.strategy");
    cfg.set("enable.partition.eof", "true");
    cfg.set("auto.offset.reset", "earliest");
    if manager.settings.app.processing_guarantee
        == crate::settings::ProcessingGuarantee::ExactlyOnce
    {
        cfg.set("isolation.level", "read_committed");
    }
    cfg.set(
        "group.id",
        Names::new(&manager.settings).global_group(&table.name),
    );
    let c: ReaderConsumer = cfg
        .create_with_context(ReaderContext)
        .map_err(|e| TableError::Kafka(e.to_string()))?;
    let topic = &table.source_topic;
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .map_err(|e| TableError::Kafka(format!("metadata of {topic}: {e}")))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(TableError::Kafka(format!(
            "topic {topic} of global table {} does not exist",
            table.name
        )));
    }
    let store = part.store().ok_or(TableError::Closed)?;
    let mut watermarks = BTreeMap::new();
    for &p in &partitions {
        let w = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .map_err(|e| TableError::Kafka(e.to_string()))?;
        watermarks.insert(p, w);
    }
    // One store holds every partition: if any partition's start moved past what it
    // holds, start over from scratch.
    for (&p, &(low, _)) in &watermarks {
        if store.changelog_offset(p)?.is_some_and(|o| o + 1 < low) {
            tracing::warn!(table = %table.name, "local store is behind the start of {topic}[{p}]: rebuilding it");
            store.clear()?;
            break;
        }
    }
    let mut tpl = TopicPartitionList::new();
    let mut end = 0i64;
    let mut from = 0i64;
    for &p in &partitions {
        let start = match store.changelog_offset(p)? {
            Some(o) => Offset::Offset(o + 1),
            None => Offset::Beginning,
        };
        let (low, high) = watermarks[&p];
        end += high;
        from += match start {
            Offset::Offset(o) => o.max(low),
            _ => low,
        };
        tpl.add_partition_offset(topic, p, start)
            .map_err(|e| TableError::Kafka(e.to_string()))?;
    }
    c.assign(&tpl)
        .map_err(|e| TableError::Kafka(e.to_string()))?;
    part.set_progress(|g| {
        g.state = RecoveryState::Recovering;
        g.from_offset = from;
        g.end_offset = end;
    });
    let mut at_end: std::collections::BTreeSet<i32> = Default::default();
    let mut batches: BTreeMap<i32, (Vec<Change>, i64)> = BTreeMap::new();
    let mut records = 0u64;
    let started = Instant::now();
    let flush = |batches: &mut BTreeMap<i32, (Vec<Change>, i64)>| -> Result<(), TableError> {
        let mut changed = false;
        for (p, (changes, last)) in std::mem::take(batches) {
            changed |= !changes.is_empty();
            store.apply(&changes, p, last)?;
        }
        if changed {
            table.version.send_modify(|v| *v += 1);
        }
        Ok(())
    };
    while !*shutdown.borrow() {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                let entry = batches
                    .entry(m.partition())
                    .or_insert_with(|| (Vec::new(), 0));
                if let Some(k) = m.key() {
                    entry.0.push((k.to_vec(), m.payload().map(<[u8]>::to_vec)));
                }
                entry.1 = m.offset();
                if entry.0.len() >= 5_000 {
                    flush(&mut batches)?;
                }
                if ready.is_some() && records % 10_000 == 0 {
                    part.set_progress(|g| g.records = records);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                flush(&mut batches)?;
                at_end.insert(p);
                if ready.is_some() && partitions.iter().all(|p| at_end.contains(p)) {
                    part.set_progress(|g| {
                        g.records = records;
                        g.state = RecoveryState::Ready;
                        g.eta_ms = Some(0);
                    });
                    tracing::info!(
                        table = %table.name,
                        "global table caught up with {topic}: {records} records in {:.2} s",
                        started.elapsed().as_secs_f64()
                    );
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
            }
            Some(Err(e)) => tracing::warn!(table = %table.name, "global table read error: {e}"),
            None => flush(&mut batches)?,
        }
    }
    flush(&mut batches)?;
    table.close_all();
    Ok(())
}
