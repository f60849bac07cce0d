//! Exactly-once processing: one transactional producer per worker. Every
//! `app.commit_interval` the coordinator stops all agents between two events (a
//! barrier), adds each agent's processed source offsets to the transaction, commits it
//! (records agents produced, changelog writes and offsets together), and only then
//! applies the staged table writes to RocksDB. When anything fails — a commit, a
//! processing error, a rebalance — the transaction is aborted: staged writes are
//! dropped and every source partition goes back to its last committed offset.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{watch, RwLock};

use crate::agent::coordinator::{Coordinator, TransactionalSource};
use crate::kafka::SharedProducer;
use crate::table::TableManager;

pub struct Transactions {
    producer: SharedProducer,
    /// Agents hold it for reading while they process an event; the coordinator takes it
    /// for writing, so a commit always falls between events.
    barrier: Arc<RwLock<()>>,
    abort_requested: AtomicBool,
    sources: Mutex<Vec<Box<dyn TransactionalSource>>>,
    tables: Arc<TableManager>,
    /// Transactions committed and aborted since the worker started.
    pub committed: AtomicU64,
    pub aborted: AtomicU64,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl Transactions {
    /// Fences older instances with the same transactional id and opens a transaction.
    pub async fn start(
        producer: SharedProducer,
        tables: Arc<TableManager>,
    ) -> Result<Arc<Self>, String> {
        let p = producer.clone();
        tokio::task::spawn_blocking(move || {
            p.raw().init_transactions(TIMEOUT)?;
            p.raw().begin_transaction()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot start transactions: {e}"))?;
        Ok(Arc::new(Self {
            producer,
            barrier: Arc::new(RwLock::new(())),
            abort_requested: AtomicBool::new(false),
            sources: Mutex::default(),
            tables,
            committed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
        }))
    }

    /// Commits every `interval` until shutdown, then once more.
    pub async fn run(self: Arc<Self>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            if let Err(fatal) = self.cycle().await {
                tracing::error!("exactly-once: {fatal}; stopping the worker");
                std::process::exit(1);
            }
        }
    }

    /// The final commit at shutdown, once the agents have stopped.
    pub async fn finish(&self) {
        if let Err(fatal) = self.cycle().await {
            tracing::error!("exactly-once: final commit failed: {fatal}");
        }
        // The consumers were kept for the final commit; closing them now leaves their
        // groups at once, so partitions move without waiting for the session timeout.
        let sources = std::mem::take(&mut *self.sources.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::task::spawn_blocking(move || drop(sources)).await;
    }

    /// One commit (or abort). An error is fatal: this worker was fenced.
    async fn cycle(&self) -> Result<(), String> {
        let _paused = self.barrier.write().await;
        if self.abort_requested.swap(false, Ordering::AcqRel) {
            return self.abort().await;
        }
        let mut work = Vec::new();
        let mut committed = Vec::new();
        let mut no_group = false;
        for h in self
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let mut tpl = TopicPartitionList::new();
            for (t, o) in h.committable() {
                let _ = tpl.add_partition_offset(&t.topic, t.partition, Offset::Offset(o));
                committed.push((t, o));
            }
            if tpl.count() > 0 {
                match h.group_metadata() {
                    Some(cgm) => work.push((tpl, cgm)),
                    None => no_group = true,
                }
            }
        }
        if no_group {
            return self.abort().await;
        }
        let p = self.producer.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<(), KafkaError> {
            for (tpl, cgm) in &work {
                p.raw().send_offsets_to_transaction(tpl, cgm, TIMEOUT)?;
            }
            p.raw().commit_transaction(TIMEOUT)
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled));
        match result {
            Ok(()) => {
                self.committed.fetch_add(1, Ordering::Relaxed);
                for (t, o) in committed {
                    t.set_committed(o);
                }
                self.tables.commit_staged();
                self.begin().await
            }
            Err(e) if is_fatal(&e) => Err(format!(
                "commit failed fatally ({e}); another instance may have taken over"
            )),
            Err(e) => {
                tracing::warn!("transaction commit failed: {e}; aborting");
                self.abort().await
            }
        }
    }

    async fn abort(&self) -> Result<(), String> {
        self.aborted.fetch_add(1, Ordering::Relaxed);
        let p = self.producer.clone();
        let aborted = tokio::task::spawn_blocking(move || p.raw().abort_transaction(TIMEOUT))
            .await
            .unwrap_or(Err(KafkaError::Canceled));
        if let Err(e) = aborted {
            if is_fatal(&e) {
                return Err(format!("abort failed fatally: {e}"));
            }
            tracing::warn!("abort_transaction: {e}");
        }
        self.tables.discard_staged();
        let waits: Vec<_> = self
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|h| h.abort())
            .collect();
        for w in waits {
            let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
        }
        self.begin().await
    }

    async fn begin(&self) -> Result<(), String> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.raw().begin_transaction())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot begin a transaction: {e}"))
    }
}

impl Coordinator for Transactions {
    fn barrier(&self) -> Arc<RwLock<()>> {
        self.barrier.clone()
    }

    fn request_abort(&self, why: &str) {
        if !self.abort_requested.swap(true, Ordering::AcqRel) {
            tracing::warn!("aborting the current transaction: {why}");
        }
    }

    fn register(&self, source: Box<dyn TransactionalSource>) {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }
}

fn is_fatal(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.is_fatal(),
        _ => false,
    }
}
