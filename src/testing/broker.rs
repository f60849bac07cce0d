//! The test driver's broker: topics of partitions of records in memory, consumer groups'
//! committed offsets, and one transactional producer — the parts of Kafka an agent's
//! guarantees rest on, with Kafka's rules (offsets never reused, aborted records keep their
//! offsets and are skipped by `read_committed` readers, which stop at the first record of
//! an open transaction).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::stream::event::Headers;
use crate::stream::sink::{DeliveryTag, EnqueueError, OutRecord, RecordSink};

/// Where a record stands with respect to its producer's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Committed,
    /// In the open transaction: invisible to `read_committed` readers, and it holds them.
    Pending,
    Aborted,
}

/// A record as the broker keeps it.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Headers,
    pub timestamp: Option<i64>,
    pub state: RecordState,
}

#[derive(Default)]
struct BrokerState {
    topics: BTreeMap<String, Vec<Vec<StoredRecord>>>,
    /// Partitions of topics created on first use.
    partitions: HashMap<String, i32>,
    /// (group, topic, partition) → the next offset to read.
    committed: HashMap<(String, String, i32), i64>,
}

/// Topics, partitions, groups and the open transaction, shared by the driver's producer
/// and its readers.
#[derive(Default)]
pub struct MemoryBroker {
    state: Mutex<BrokerState>,
    appended: AtomicU64,
}

impl MemoryBroker {
    fn lock(&self) -> std::sync::MutexGuard<'_, BrokerState> {
        // Every change below is one push or one assignment: a panic cannot leave a
        // half-made change.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Topic `topic` gets `n` partitions when it is created.
    pub fn set_partitions(&self, topic: &str, n: i32) {
        let mut s = self.lock();
        s.partitions.insert(topic.to_string(), n.max(1));
        let n = n.max(1) as usize;
        if let Some(parts) = s.topics.get_mut(topic) {
            while parts.len() < n {
                parts.push(Vec::new());
            }
        }
    }

    fn topic_mut<'a>(s: &'a mut BrokerState, topic: &str) -> &'a mut Vec<Vec<StoredRecord>> {
        let n = s.partitions.get(topic).copied().unwrap_or(1) as usize;
        s.topics
            .entry(topic.to_string())
            .or_insert_with(|| vec![Vec::new(); n])
    }

    pub fn partitions(&self, topic: &str) -> i32 {
        let mut s = self.lock();
        Self::topic_mut(&mut s, topic).len() as i32
    }

    pub fn topics(&self) -> Vec<String> {
        self.lock().topics.keys().cloned().collect()
    }

    /// Appends `rec` (to its partition, else by its key's hash, else partition 0); returns
    /// its partition and offset.
    pub fn append(&self, rec: &OutRecord, state: RecordState) -> Result<(i32, i64), String> {
        let mut s = self.lock();
        let parts = Self::topic_mut(&mut s, &rec.topic);
        let n = parts.len() as i32;
        let p = match (rec.partition, &rec.key) {
            (Some(p), _) if (0..n).contains(&p) => p,
            (Some(p), _) => {
                return Err(format!(
                    "{}[{p}] does not exist ({n} partitions)",
                    rec.topic
                ))
            }
            (None, Some(k)) => partition_of(k, n),
            (None, None) => 0,
        };
        let log = &mut parts[p as usize];
        log.push(StoredRecord {
            key: rec.key.clone().map(Bytes::from),
            value: rec.value.clone().map(Bytes::from),
            headers: rec.headers.clone(),
            timestamp: rec.timestamp,
            state,
        });
        self.appended.fetch_add(1, Ordering::Relaxed);
        Ok((p, log.len() as i64 - 1))
    }

    /// Records of `topic[p]` from `from`, with their offsets: under `read_committed`, the
    /// aborted ones left out and none from the first of an open transaction on.
    pub fn read(
        &self,
        topic: &str,
        p: i32,
        from: i64,
        read_committed: bool,
    ) -> Vec<(i64, StoredRecord)> {
        let s = self.lock();
        let Some(log) = s.topics.get(topic).and_then(|t| t.get(p as usize)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (o, r) in log.iter().enumerate().skip(from.max(0) as usize) {
            match r.state {
                RecordState::Pending if read_committed => break,
                RecordState::Aborted if read_committed => continue,
                _ => out.push((o as i64, r.clone())),
            }
        }
        out
    }

    /// One past the last offset of `topic[p]`.
    pub fn end(&self, topic: &str, p: i32) -> i64 {
        let s = self.lock();
        s.topics
            .get(topic)
            .and_then(|t| t.get(p as usize))
            .map_or(0, |l| l.len() as i64)
    }

    /// The open transaction's records become visible (`commit`) or are skipped for good.
    pub fn end_transaction(&self, commit: bool) {
        let mut s = self.lock();
        let to = if commit {
            RecordState::Committed
        } else {
            RecordState::Aborted
        };
        for parts in s.topics.values_mut() {
            for log in parts {
                for r in log.iter_mut().rev() {
                    if r.state == RecordState::Pending {
                        r.state = to;
                    }
                }
            }
        }
    }

    pub fn committed(&self, group: &str, topic: &str, p: i32) -> Option<i64> {
        self.lock()
            .committed
            .get(&(group.to_string(), topic.to_string(), p))
            .copied()
    }

    pub fn commit(&self, group: &str, topic: &str, p: i32, offset: i64) {
        self.lock()
            .committed
            .insert((group.to_string(), topic.to_string(), p), offset);
    }

    /// Records appended since the broker was made (a progress measure).
    pub fn appended(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }
}

/// The partition of a keyed record: a stable hash of the key.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % partitions.max(1) as u64) as i32
}

/// A delivery report on its way back to the record's tag.
struct Pending {
    topic: String,
    result: Result<i64, String>,
    tag: DeliveryTag,
}

/// The producer agents and tables send through in the driver: it appends to the broker
/// at once and reports deliveries when the driver lets it (`deliver`), so a test can hold
/// them — the window between a produce and its ack — or make some fail.
pub struct MemoryProducer {
    broker: Arc<MemoryBroker>,
    transactional: bool,
    reports: Mutex<VecDeque<Pending>>,
    held: AtomicBool,
    /// The worker crashed: what it still tries to send is refused.
    fenced: AtomicBool,
    /// topic → how many of its next records fail.
    failures: Mutex<HashMap<String, usize>>,
    delivered: AtomicU64,
}

impl MemoryProducer {
    pub fn new(broker: Arc<MemoryBroker>, transactional: bool) -> Self {
        Self {
            broker,
            transactional,
            reports: Mutex::default(),
            held: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            failures: Mutex::default(),
            delivered: AtomicU64::new(0),
        }
    }

    fn reports(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.reports.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn hold(&self, held: bool) {
        self.held.store(held, Ordering::Release);
    }

    /// Refuses every later record, as Kafka refuses a fenced producer's.
    pub fn fence(&self) {
        self.fenced.store(true, Ordering::Release);
    }

    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// The next `n` records sent to `topic` are not written and their delivery fails.
    pub fn fail_next(&self, topic: &str, n: usize) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(topic.to_string())
            .or_default() += n;
    }

    /// Reports every delivery (unless held); returns how many.
    pub fn deliver(&self) -> usize {
        if self.is_held() {
            return 0;
        }
        let batch: Vec<Pending> = self.reports().drain(..).collect();
        let n = batch.len();
        for Pending {
            topic,
            result,
            mut tag,
        } in batch
        {
            if let Some(f) = tag.on_delivery.take() {
                f(result.clone());
            }
            if let Err(e) = &result {
                if let Some(o) = &tag.observer {
                    o.delivery_failed();
                }
                if let Some(t) = &tag.token {
                    t.fail(format!("delivery to {topic} failed: {e}"));
                }
            }
            // Dropping the tag drops its token clone: the event is acked (or rewound).
        }
        self.delivered.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Deliveries not reported yet.
    pub fn undelivered(&self) -> usize {
        self.reports().len()
    }

    /// Forgets every delivery not reported: the process died with them (the caller has
    /// retired the trackers, so the dropped tokens ack nothing).
    pub fn lose_reports(&self) {
        let lost: Vec<Pending> = self.reports().drain(..).collect();
        for p in lost {
            if let Some(t) = &p.tag.token {
                t.forget();
            }
        }
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl RecordSink for MemoryProducer {
    async fn send(&self, rec: &OutRecord, tag: DeliveryTag) -> Result<(), EnqueueError> {
        if self.fenced.load(Ordering::Acquire) {
            if let Some(t) = &tag.token {
                t.forget();
            }
            return Err(EnqueueError(
                "the worker crashed: its producer is fenced".into(),
            ));
        }
        let fail = {
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            match f.get_mut(&rec.topic) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            }
        };
        let result = if fail {
            Err("injected delivery failure".to_string())
        } else {
            let state = if self.transactional {
                RecordState::Pending
            } else {
                RecordState::Committed
            };
            self.broker.append(rec, state).map(|(_, offset)| offset)
        };
        self.reports().push_back(Pending {
            topic: rec.topic.clone(),
            result,
            tag,
        });
        Ok(())
    }

    async fn flush(&self, _timeout: Duration) -> Result<(), EnqueueError> {
        self.deliver();
        match self.undelivered() {
            0 => Ok(()),
            n => Err(EnqueueError(format!(
                "{n} deliveries are held by the test driver"
            ))),
        }
    }

    fn in_flight(&self) -> i32 {
        self.undelivered() as i32
    }
}

/// The REST Proxy's view of the broker: the driver serves the proxy's HTTP API over it.
pub struct ProxyOnBroker(pub Arc<MemoryBroker>);

#[async_trait::async_trait]
impl crate::services::rest_proxy::ProxyBackend for ProxyOnBroker {
    async fn cluster(
        &self,
    ) -> Result<crate::services::rest_proxy::metadata::Cluster, crate::services::rest_proxy::ApiError>
    {
        use crate::services::rest_proxy::metadata::{Cluster, PartitionMeta, Replica, TopicMeta};
        Ok(Cluster {
            brokers: vec![0],
            topics: self
                .0
                .topics()
                .into_iter()
                .map(|name| TopicMeta {
                    partitions: (0..self.0.partitions(&name))
                        .map(|p| PartitionMeta {
                            partition: p,
                            leader: 0,
                            replicas: vec![Replica {
                                broker: 0,
                                leader: true,
                                in_sync: true,
                            }],
                        })
                        .collect(),
                    name,
                    missing: false,
                })
                .collect(),
        })
    }

    async fn topic_configs(
        &self,
        _name: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, crate::services::rest_proxy::ApiError>
    {
        Ok(Default::default())
    }

    async fn auto_creates(&self) -> bool {
        true
    }

    async fn produce(
        &self,
        topic: &str,
        records: &[crate::services::rest_proxy::ProxyRecord],
    ) -> Vec<Result<(i32, i64), crate::services::rest_proxy::ProduceFailure>> {
        records
            .iter()
            .map(|r| {
                let rec = OutRecord {
                    topic: topic.to_string(),
                    partition: r.partition,
                    key: r.key.clone(),
                    value: r.value.clone(),
                    ..OutRecord::default()
                };
                self.0
                    .append(&rec, RecordState::Committed)
                    .map_err(|message| crate::services::rest_proxy::ProduceFailure {
                        message,
                        retriable: false,
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &str, key: &str) -> OutRecord {
        OutRecord {
            topic: topic.into(),
            key: Some(key.as_bytes().to_vec()),
            value: Some(b"v".to_vec()),
            ..OutRecord::default()
        }
    }

    #[test]
    fn read_committed_skips_aborted_records_and_stops_at_an_open_transaction() {
        let b = MemoryBroker::default();
        b.append(&rec("t", "a"), RecordState::Committed).unwrap();
        b.append(&rec("t", "b"), RecordState::Pending).unwrap();
        b.end_transaction(false);
        b.append(&rec("t", "c"), RecordState::Committed).unwrap();
        b.append(&rec("t", "d"), RecordState::Pending).unwrap();
        b.append(&rec("t", "e"), RecordState::Committed).unwrap();
        let offsets = |rc| -> Vec<i64> { b.read("t", 0, 0, rc).iter().map(|r| r.0).collect() };
        assert_eq!(offsets(true), vec![0, 2], "1 aborted, 3 open");
        assert_eq!(offsets(false), vec![0, 1, 2, 3, 4]);
        b.end_transaction(true);
        assert_eq!(offsets(true), vec![0, 2, 3, 4]);
    }

    #[test]
    fn keyed_records_keep_to_one_partition() {
        let b = MemoryBroker::default();
        b.set_partitions("t", 4);
        let (p, _) = b
            .append(&rec("t", "station-7"), RecordState::Committed)
            .unwrap();
        for _ in 0..5 {
            assert_eq!(
                b.append(&rec("t", "station-7"), RecordState::Committed)
                    .unwrap()
                    .0,
                p
            );
        }
        assert_eq!(b.end("t", p), 6);
        let mut bad = rec("t", "x");
        bad.partition = Some(9);
        assert!(b
            .append(&bad, RecordState::Committed)
            .unwrap_err()
            .contains("t[9]"));
    }
}
