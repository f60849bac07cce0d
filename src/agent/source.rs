//! The Kafka side of an agent: its consumer (one group per agent), the dispatch of
//! events to its instances, commits of acked offsets, rewinds and rebalances.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use super::status::AgentStatus;
use crate::stream::ack::{AckToken, PartitionTracker, Rewind};
use crate::stream::event::{Headers, RawEvent};
use crate::stream::typed::Dispatched;

type TrackersByPartition = HashMap<(Arc<str>, i32), Arc<PartitionTracker>>;

/// The ack trackers of the partitions an agent currently owns.
#[derive(Default)]
pub(crate) struct TrackerMap {
    map: Mutex<TrackersByPartition>,
    pub attention: Arc<AtomicBool>,
}

impl TrackerMap {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackersByPartition> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_or_create(&self, topic: &Arc<str>, partition: i32) -> Arc<PartitionTracker> {
        self.lock()
            .entry((topic.clone(), partition))
            .or_insert_with(|| {
                Arc::new(PartitionTracker::new(
                    topic.clone(),
                    partition,
                    self.attention.clone(),
                ))
            })
            .clone()
    }

    fn remove(&self, topic: &str, partition: i32) -> Option<Arc<PartitionTracker>> {
        let key = (Arc::<str>::from(topic), partition);
        self.lock().remove(&key)
    }

    pub fn all(&self) -> Vec<Arc<PartitionTracker>> {
        self.lock().values().cloned().collect()
    }
}

/// Consumer callbacks: on revoke, commit what is done and retire the partition's
/// tracker so that late acks and queued events of it are ignored.
pub(crate) struct SourceContext {
    pub agent: String,
    pub trackers: Arc<TrackerMap>,
}

impl ClientContext for SourceContext {}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut commit = TopicPartitionList::new();
            for e in tpl.elements() {
                if let Some(t) = self.trackers.remove(e.topic(), e.partition()) {
                    if let Some(o) = t.committable() {
                        let _ = commit.add_partition_offset(
                            e.topic(),
                            e.partition(),
                            Offset::Offset(o),
                        );
                    }
                    t.retire();
                }
            }
            if commit.count() > 0 {
                if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                    tracing::warn!(agent = %self.agent, "commit on revoke failed: {e}");
                }
            }
            tracing::info!(agent = %self.agent, partitions = %describe(tpl), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(agent = %self.agent, partitions = %describe(tpl), "partitions assigned")
            }
            Rebalance::Error(e) => tracing::error!(agent = %self.agent, "rebalance error: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(agent = %self.agent, "offset commit failed: {e}");
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for e in tpl.elements() {
        by_topic
            .entry(e.topic().to_string())
            .or_default()
            .push(e.partition());
    }
    if by_topic.is_empty() {
        return "none".into();
    }
    by_topic
        .iter()
        .map(|(t, ps)| format!("{t}{ps:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads the consumer and feeds the instances until shutdown.
pub(crate) struct SourceLoop {
    pub agent: String,
    pub consumer: Arc<StreamConsumer<SourceContext>>,
    pub trackers: Arc<TrackerMap>,
    pub senders: Vec<mpsc::Sender<Dispatched>>,
    pub status: Arc<AgentStatus>,
    pub commit_interval: Duration,
    topics: HashMap<String, Arc<str>>,
    /// The partition of the previous event: most events follow one of the same.
    last: Option<Arc<PartitionTracker>>,
    /// Rewinds whose seek failed, retried at the next commit tick.
    pending_seeks: Vec<(Arc<str>, i32, Rewind)>,
    last_error_log: Option<Instant>,
}

impl SourceLoop {
    pub fn new(
        agent: String,
        consumer: Arc<StreamConsumer<SourceContext>>,
        trackers: Arc<TrackerMap>,
        senders: Vec<mpsc::Sender<Dispatched>>,
        status: Arc<AgentStatus>,
        commit_interval: Duration,
    ) -> Self {
        Self {
            agent,
            consumer,
            trackers,
            senders,
            status,
            commit_interval,
            topics: HashMap::new(),
            last: None,
            pending_seeks: Vec::new(),
            last_error_log: None,
        }
    }

    pub async fn run(&mut self, mut shutdown: watch::Receiver<bool>) {
        let mut commit_tick = tokio::time::interval(self.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let consumer = self.consumer.clone();
        loop {
            let msg = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => break,
                _ = commit_tick.tick() => {
                    self.rewind_if_asked();
                    self.commit(CommitMode::Async);
                    continue;
                }
                msg = consumer.recv() => msg,
            };
            match msg {
                Ok(m) => {
                    let (raw, instance) = self.raw_event(&m);
                    drop(m);
                    let tracker = self.tracker_for(&raw);
                    let token = AckToken::dispatch(&tracker, raw.offset);
                    let d = Dispatched::new(Arc::new(raw), token);
                    tokio::select! {
                        biased;
                        _ = shutdown.wait_for(|s| *s) => break,
                        r = self.senders[instance].send(d) => if r.is_err() { break },
                    }
                }
                Err(e) => self.log_consume_error(&e),
            }
            if self.trackers.attention.load(Ordering::Acquire) {
                self.rewind_if_asked();
            }
        }
    }

    fn tracker_for(&mut self, raw: &RawEvent) -> Arc<PartitionTracker> {
        if let Some(t) = &self.last {
            // Same partition, not revoked since: the map still holds this tracker.
            if t.partition == raw.partition && Arc::ptr_eq(&t.topic, &raw.topic) && !t.is_retired()
            {
                return t.clone();
            }
        }
        let t = self.trackers.get_or_create(&raw.topic, raw.partition);
        self.last = Some(t.clone());
        t
    }

    fn raw_event(&mut self, m: &BorrowedMessage<'_>) -> (RawEvent, usize) {
        let topic = match self.topics.get(m.topic()) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(m.topic());
                self.topics.insert(m.topic().to_string(), t.clone());
                t
            }
        };
        let headers = m
            .headers()
            .map(|hs| {
                Headers(
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.map(Bytes::copy_from_slice)))
                        .collect(),
                )
            })
            .unwrap_or_default();
        let instance = if self.senders.len() == 1 {
            0
        } else {
            let mut h = DefaultHasher::new();
            (m.topic(), m.partition()).hash(&mut h);
            (h.finish() % self.senders.len() as u64) as usize
        };
        let raw = RawEvent {
            key: m.key().map(Bytes::copy_from_slice),
            value: m.payload().map(Bytes::copy_from_slice),
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            headers,
        };
        (raw, instance)
    }

    fn log_consume_error(&mut self, e: &rdkafka::error::KafkaError) {
        // librdkafka reports a down broker on every poll; once in a while is enough.
        let now = Instant::now();
        if self
            .last_error_log
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(10))
        {
            tracing::warn!(agent = %self.agent, "consumer error: {e}");
            self.last_error_log = Some(now);
        }
    }

    /// Seeks back every partition with a failed event, so it is delivered again.
    fn rewind_if_asked(&mut self) {
        if self.trackers.attention.swap(false, Ordering::AcqRel) {
            for t in self.trackers.all() {
                if let Some(r) = t.take_rewind() {
                    self.pending_seeks.push((t.topic.clone(), t.partition, r));
                }
            }
        }
        let seeks = std::mem::take(&mut self.pending_seeks);
        for (topic, partition, r) in seeks {
            match self.consumer.seek(
                &topic,
                partition,
                Offset::Offset(r.offset),
                Duration::from_secs(5),
            ) {
                Ok(()) => {
                    AgentStatus::incr(&self.status.rewinds);
                    tracing::warn!(
                        agent = %self.agent,
                        "{topic}[{partition}] rewound to offset {}: {}",
                        r.offset,
                        r.reason
                    );
                }
                Err(e) => {
                    // Still owned? Try again at the next tick; a revoked partition's
                    // new owner starts from the committed offset, which is below r.
                    if self
                        .trackers
                        .lock()
                        .contains_key(&(topic.clone(), partition))
                    {
                        tracing::warn!(agent = %self.agent, "seek of {topic}[{partition}] to {} failed ({e}); retrying", r.offset);
                        self.pending_seeks.push((topic, partition, r));
                    }
                }
            }
        }
    }

    /// Commits acked offsets that moved (all of them when `mode` is sync, at the end).
    pub fn commit(&self, mode: CommitMode) {
        let mut tpl = TopicPartitionList::new();
        for t in self.trackers.all() {
            let offset = match mode {
                CommitMode::Sync => t.committable(),
                CommitMode::Async => t.take_committable(),
            };
            if let Some(o) = offset {
                let _ = tpl.add_partition_offset(&t.topic, t.partition, Offset::Offset(o));
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::warn!(agent = %self.agent, "offset commit failed: {e}");
        }
    }
}
