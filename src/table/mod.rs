//! Tables: key/value state kept per partition in a layered store (`store`: RocksDB or
//! memory, cached, metered; `partition`: change-logging) and mirrored to a compacted
//! changelog topic, so it survives crashes and follows partitions between workers.
//! [`Table`] only types (codecs) and routes (the partition of the event in hand).
//!
//! A table is written by one agent and co-partitioned with that agent's sources: a
//! write made while processing an event of partition `p` goes to table partition `p`.
//! A global table is held whole by every worker and is read-only.

pub mod decl;
pub mod join;
pub mod manager;
pub mod partition;
pub(crate) mod recovery;
pub mod store;
pub mod window;
pub mod windowed;

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

pub use decl::{TableDecl, TableRegistry, TableSpec};
pub use join::JoinTable;
pub use manager::{TableManager, TableRuntime};
pub use partition::{RecoveryProgress, RecoveryState, TablePartition};
pub use window::WindowSpec;
pub use windowed::{GlobalWindowedTable, Updated, Window, WindowedTable, WindowedView};

use crate::stream::sink::{DeliveryObserver, Producer};
use crate::stream::Port;

#[derive(Debug, Error)]
pub enum TableError {
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("table codec: {0}")]
    Codec(String),
    #[error("table Kafka client: {0}")]
    Kafka(String),
    #[error("table {0} is in the settings but not declared with register_table!")]
    Undeclared(String),
    #[error("no table named '{0}' in the settings ([tables.{0}])")]
    Unknown(String),
    #[error("agent {agent} cannot use table {table}: {reason}")]
    NotAllowed {
        table: String,
        agent: String,
        reason: String,
    },
    #[error("table {table}: partition {partition} is not held by this worker (revoked)")]
    NotHeld { table: String, partition: i32 },
    #[error("table {0}: there is no event in hand to take the partition from, and the table has several partitions")]
    NoPartition(String),
    #[error("table {table}: cannot write its changelog: {message}")]
    Changelog { table: String, message: String },
    #[error("the table was closed")]
    Closed,
    #[error("table {0} has no window: set `tables.{0}.window` in the settings, or use ctx.table")]
    NotWindowed(String),
    #[error("table {0} is windowed (`tables.{0}.window`): use ctx.windowed_table")]
    Windowed(String),
    #[error("table {0}: the event in hand has no timestamp to take its event time from; give the time with .at(ms) or use .relative_to_now()")]
    NoEventTime(String),
    #[error("table {0} has sliding windows: reading one merges its buckets, so give the merge function with .with_merge(..)")]
    NoMerge(String),
    #[error("{message}")]
    Late { table: String, message: String },
}

/// An agent's handle on a table.
pub struct Table<K, V> {
    rt: Arc<TableRuntime>,
    producer: Producer,
    port: Arc<Port>,
    /// The writing agent, counting failed changelog deliveries.
    observer: Arc<dyn DeliveryObserver>,
    writable: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Self {
            rt: self.rt.clone(),
            producer: self.producer.clone(),
            port: self.port.clone(),
            observer: self.observer.clone(),
            writable: self.writable,
            _types: PhantomData,
        }
    }
}

impl<K, V> Table<K, V>
where
    K: Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    pub(crate) fn bind(
        rt: Arc<TableRuntime>,
        agent: &str,
        producer: Producer,
        port: Arc<Port>,
        observer: Arc<dyn DeliveryObserver>,
    ) -> Result<Self, TableError> {
        if rt.window.is_some() {
            return Err(TableError::Windowed(rt.name.to_string()));
        }
        let writable = rt.settings.agent.as_deref() == Some(agent);
        if !writable && !rt.is_global() {
            return Err(TableError::NotAllowed {
                table: rt.name.to_string(),
                agent: agent.to_string(),
                reason: format!(
                    "it is written by agent {:?}; other agents read tables through a global table",
                    rt.settings.agent.as_deref().unwrap_or("-")
                ),
            });
        }
        Ok(Self {
            rt,
            producer,
            port,
            observer,
            writable,
            _types: PhantomData,
        })
    }

    pub fn name(&self) -> &str {
        &self.rt.name
    }

    /// The partition the agent works in: the current event's (tables are co-partitioned
    /// with their agent's sources), or the only one.
    fn partition(&self) -> Result<Arc<TablePartition>, TableError> {
        let p = if self.rt.is_global() {
            -1
        } else if self.rt.partitions == 1 {
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
        self.rt
            .key_codec
            .encode(key)
            .await
            .map_err(|e| TableError::Codec(e.to_string()))
    }

    async fn decode_value(&self, bytes: &[u8]) -> Result<V, TableError> {
        self.rt
            .value_codec
            .decode(Some(bytes))
            .await
            .map_err(|e| TableError::Codec(e.to_string()))
    }

    pub async fn get(&self, key: &K) -> Result<Option<V>, TableError> {
        let part = self.partition()?;
        let k = self.encode_key(key).await?;
        match part.get(&k)? {
            Some(v) => Ok(Some(self.decode_value(&v).await?)),
            None => Ok(None),
        }
    }

    /// Every entry of the partition in hand (of the whole table, for a global table).
    pub async fn entries(&self) -> Result<Vec<(K, V)>, TableError> {
        let part = self.partition()?;
        let mut out = Vec::new();
        for (k, v) in part.scan(None, usize::MAX)? {
            let key = self
                .rt
                .key_codec
                .decode(Some(&k))
                .await
                .map_err(|e| TableError::Codec(e.to_string()))?;
            out.push((key, self.decode_value(&v).await?));
        }
        Ok(out)
    }

    pub async fn insert(&self, key: &K, value: &V) -> Result<(), TableError> {
        let v = self
            .rt
            .value_codec
            .encode(value)
            .await
            .map_err(|e| TableError::Codec(e.to_string()))?;
        self.write(key, Some(v)).await
    }

    pub async fn remove(&self, key: &K) -> Result<(), TableError> {
        self.write(key, None).await
    }

    async fn write(&self, key: &K, value: Option<Vec<u8>>) -> Result<(), TableError> {
        if !self.writable {
            return Err(TableError::NotAllowed {
                table: self.rt.name.to_string(),
                agent: self.observer.name().to_string(),
                reason: "a global table is read-only".into(),
            });
        }
        let part = self.partition()?;
        let k = self.encode_key(key).await?;
        part.write(
            self.producer.as_ref(),
            &self.rt.changelog,
            k,
            value,
            self.port.delivery_token(),
            self.observer.clone(),
        )
        .await
        .map_err(|e| TableError::Changelog {
            table: self.rt.name.to_string(),
            message: e.to_string(),
        })
    }
}

/// A read-only handle on a global table, for code outside agents (web views): every
/// worker holds the whole table, so any of them can answer.
pub struct GlobalTable<K, V> {
    rt: Arc<TableRuntime>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for GlobalTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            rt: self.rt.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> GlobalTable<K, V>
where
    K: Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    pub(crate) fn bind(rt: Arc<TableRuntime>) -> Result<Self, TableError> {
        if !rt.is_global() {
            return Err(TableError::NotAllowed {
                table: rt.name.to_string(),
                agent: "(a view)".into(),
                reason: "only global tables are readable outside their agent".into(),
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

    /// Turns when the table applied new changes.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rt.changes()
    }

    fn part(&self) -> Result<Arc<TablePartition>, TableError> {
        self.rt.partition(-1).ok_or_else(|| TableError::NotHeld {
            table: self.rt.name.to_string(),
            partition: -1,
        })
    }

    pub async fn get(&self, key: &K) -> Result<Option<V>, TableError> {
        let k = self
            .rt
            .key_codec
            .encode(key)
            .await
            .map_err(|e| TableError::Codec(e.to_string()))?;
        match self.part()?.get(&k)? {
            Some(v) => Ok(Some(
                self.rt
                    .value_codec
                    .decode(Some(&v))
                    .await
                    .map_err(|e| TableError::Codec(e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    /// Every entry; one that does not decode is left out (and logged), so that a bad
    /// record in a followed topic cannot take a page down.
    pub async fn entries(&self) -> Result<Vec<(K, V)>, TableError> {
        let mut out = Vec::new();
        for (k, v) in self.part()?.scan(None, usize::MAX)? {
            let key = self.rt.key_codec.decode::<K>(Some(&k)).await;
            let value = self.rt.value_codec.decode::<V>(Some(&v)).await;
            match (key, value) {
                (Ok(k), Ok(v)) => out.push((k, v)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!(table = %self.rt.name, "entry left out: {e}")
                }
            }
        }
        Ok(out)
    }
}
