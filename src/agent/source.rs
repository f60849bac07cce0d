//! The Kafka side of an agent: its consumer (one group per agent), the dispatch of
//! events to its instances, commits of acked offsets, rewinds and rebalances.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
    StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, watch};

use super::coordinator::{Coordinator, TransactionalSource};
use super::status::{AgentStatus, PartitionLag};
use crate::logging::throttle::{LogSite, Summary, Throttled};
use crate::stream::ack::{AckToken, PartitionTracker, Rewind};
use crate::stream::event::{Headers, RawEvent};
use crate::stream::typed::Dispatched;
use crate::table::{TableManager, TableRuntime};

type TrackersByPartition = HashMap<(Arc<str>, i32), Arc<PartitionTracker>>;

/// The ack trackers of the partitions an agent currently owns.
#[derive(Default)]
pub(crate) struct TrackerMap {
    map: Mutex<TrackersByPartition>,
    pub attention: Arc<AtomicBool>,
    /// The agent's processing-latency histogram, which every tracker records into.
    pub latency: Option<Arc<crate::metrics::histogram::Histogram>>,
}

impl TrackerMap {
    pub fn with_latency(h: Arc<crate::metrics::histogram::Histogram>) -> Self {
        Self {
            latency: Some(h),
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackersByPartition> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_or_create(&self, topic: &Arc<str>, partition: i32) -> Arc<PartitionTracker> {
        self.lock()
            .entry((topic.clone(), partition))
            .or_insert_with(|| {
                let t = PartitionTracker::new(topic.clone(), partition, self.attention.clone());
                Arc::new(match &self.latency {
                    Some(h) => t.with_latency(h.clone()),
                    None => t,
                })
            })
            .clone()
    }

    fn remove(&self, topic: &str, partition: i32) -> Option<Arc<PartitionTracker>> {
        let key = (Arc::<str>::from(topic), partition);
        self.lock().remove(&key)
    }

    /// The tracker of a partition, if the agent owns it and has dispatched from it.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<PartitionTracker>> {
        self.lock()
            .get(&(Arc::<str>::from(topic), partition))
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<PartitionTracker>> {
        self.lock().values().cloned().collect()
    }
}

/// A finished recovery: partition, its source topics, records read or the error.
type Recovered = (i32, Vec<String>, Result<u64, String>);

/// Partitions newly assigned to an agent with tables, paused until their table
/// partitions are recovered: partition number → source topics.
pub(crate) type Assignment = std::collections::BTreeMap<i32, Vec<String>>;

/// Consumer callbacks: on revoke, commit what is done, retire the partition's tracker so
/// that late acks and queued events of it are ignored, and close its table partitions;
/// on assign, pause the partitions whose tables must be recovered first.
pub(crate) struct SourceContext {
    pub agent: String,
    pub trackers: Arc<TrackerMap>,
    pub tables: Vec<Arc<TableRuntime>>,
    pub assignments: mpsc::UnboundedSender<Assignment>,
    /// Under exactly-once, offsets are committed by transactions only.
    pub coordinator: Option<Arc<dyn Coordinator>>,
    /// Where lag, commits and rebalances are counted.
    pub status: Arc<AgentStatus>,
    /// The end of a partition for this consumer is its last stable offset.
    pub read_committed: bool,
    /// The topics the agent's tables are co-partitioned with, when not all of its
    /// sources: a `group_by` agent's repartition topics (the sources it re-keys may have
    /// other partition counts, and hold no state).
    pub table_topics: Option<Vec<String>>,
}

impl SourceContext {
    /// The partitions of `tpl` whose table partitions follow them.
    fn table_partitions(&self, tpl: &TopicPartitionList) -> TopicPartitionList {
        let mut out = TopicPartitionList::new();
        for e in tpl.elements() {
            if self
                .table_topics
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == e.topic()))
            {
                out.add_partition(e.topic(), e.partition());
            }
        }
        out
    }
}

/// A pattern subscription that no topic matches yet: librdkafka reports it as an error,
/// but it is the normal state of a fresh broker until the topics are created (then the
/// next metadata refresh assigns them).
fn is_pattern_without_topics(error: &rdkafka::error::KafkaError, reason: &str) -> bool {
    error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)
        && reason.contains("Subscribed topic not available: ^")
}

impl ClientContext for SourceContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if is_pattern_without_topics(&error, reason) {
            tracing::info!(agent = %self.agent, "no topic matches the source pattern yet; it is read once one is created");
        } else {
            tracing::error!(agent = %self.agent, "librdkafka: {error}: {reason}");
        }
    }

    /// librdkafka's statistics (every `statistics.interval.ms`) give each assigned
    /// partition's end; the position is what the agent has acked, which the consumer
    /// alone does not know (under exactly-once its commits go through the producer).
    fn stats(&self, stats: rdkafka::Statistics) {
        let mut lag = Vec::new();
        for (topic, t) in &stats.topics {
            for (&partition, p) in &t.partitions {
                if partition < 0 || !p.desired {
                    continue;
                }
                let end = if self.read_committed {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                if end < 0 {
                    continue;
                }
                let tracker = self.trackers.get(topic, partition);
                let mut acked = tracker.as_ref().and_then(|t| t.position());
                // Nothing fetched is waiting and nothing dispatched is unacked: the agent
                // is at the fetch position, past any transaction markers (offsets that
                // are never delivered, so never acked) below it.
                let idle = tracker.as_ref().is_none_or(|t| t.in_flight() == 0);
                if idle && p.fetchq_cnt == 0 && p.next_offset >= 0 {
                    acked = Some(acked.map_or(p.next_offset, |a| a.max(p.next_offset)));
                }
                let position = acked
                    .or((p.committed_offset >= 0).then_some(p.committed_offset))
                    .unwrap_or(end);
                lag.push(PartitionLag {
                    topic: topic.clone(),
                    partition,
                    end_offset: end,
                    position,
                    lag: (end - position).max(0),
                    committed_offset: p.committed_offset.max(-1),
                });
            }
        }
        lag.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        self.status.set_lag(lag);
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if tpl.count() > 0 {
                AgentStatus::incr(&self.status.revocations);
            }
            if let Some(t) = &self.coordinator {
                // Work on these partitions is in the open transaction without its
                // offsets; it must not commit. The new owner starts from the last commit.
                if tpl.count() > 0 {
                    t.request_abort(&format!("partitions revoked from agent {}", self.agent));
                }
                for e in tpl.elements() {
                    if let Some(t) = self.trackers.remove(e.topic(), e.partition()) {
                        t.retire();
                    }
                }
                for t in &self.tables {
                    for e in self.table_partitions(tpl).elements() {
                        t.close(e.partition());
                    }
                }
                tracing::info!(agent = %self.agent, partitions = %describe(tpl), "partitions revoked");
                return;
            }
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
                match consumer.commit(&commit, CommitMode::Sync) {
                    Ok(()) => AgentStatus::incr(&self.status.commits),
                    Err(e) => {
                        AgentStatus::incr(&self.status.commit_failures);
                        tracing::warn!(agent = %self.agent, "commit on revoke failed: {e}");
                    }
                }
            }
            let partitions: std::collections::BTreeSet<i32> = self
                .table_partitions(tpl)
                .elements()
                .iter()
                .map(|e| e.partition())
                .collect();
            for t in &self.tables {
                for p in &partitions {
                    t.close(*p);
                }
            }
            tracing::info!(agent = %self.agent, partitions = %describe(tpl), "partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                AgentStatus::incr(&self.status.assignments);
                tracing::info!(agent = %self.agent, partitions = %describe(tpl), "partitions assigned");
                let tpl = &self.table_partitions(tpl);
                if !self.tables.is_empty() && tpl.count() > 0 {
                    // No event of a partition reaches the agent before its tables are whole.
                    if let Err(e) = consumer.pause(tpl) {
                        tracing::error!(agent = %self.agent, "cannot pause for table recovery: {e}");
                    }
                    let mut a = Assignment::new();
                    for e in tpl.elements() {
                        a.entry(e.partition())
                            .or_default()
                            .push(e.topic().to_string());
                    }
                    let _ = self.assignments.send(a);
                }
            }
            Rebalance::Error(e) => tracing::error!(agent = %self.agent, "rebalance error: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }

    /// Async commits are confirmed here only on some librdkafka paths; the count is kept
    /// where the commit is sent (`SourceLoop::commit`), failures reported here too.
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {}
            // Nothing to commit is not a failure.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => {
                AgentStatus::incr(&self.status.commit_failures);
                tracing::warn!(agent = %self.agent, "offset commit failed: {e}");
            }
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

/// Lines of the consumer loop that can repeat at every poll or tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LoopEvent {
    ConsumerError,
    SeekFailed,
}

/// Writes the summaries of the loop's throttled lines.
struct LoopLog {
    agent: String,
}

impl LogSite for LoopLog {
    type Cause = LoopEvent;
    /// The last line left out, in full.
    type Example = String;

    fn summarize(&self, s: Summary<LoopEvent, String>) {
        let counts = s.counts();
        let (suppressed, suppressed_total) = (s.suppressed, s.total);
        match s.cause {
            LoopEvent::ConsumerError => tracing::warn!(
                agent = %self.agent, suppressed, suppressed_total,
                "consumer errors: {counts}; the last: {}", s.last
            ),
            LoopEvent::SeekFailed => tracing::warn!(
                agent = %self.agent, suppressed, suppressed_total,
                "failed seeks, retried at each commit: {counts}; the last: {}", s.last
            ),
        }
    }
}

/// Reads the consumer and feeds the instances until shutdown.
/// The instance of `instances` that handles `topic[partition]`: always the same one, so
/// that a partition's events are processed in order.
pub(crate) fn instance_for(topic: &str, partition: i32, instances: usize) -> usize {
    if instances <= 1 {
        return 0;
    }
    let mut h = DefaultHasher::new();
    (topic, partition).hash(&mut h);
    (h.finish() % instances as u64) as usize
}

pub(crate) struct SourceLoop {
    pub agent: String,
    pub consumer: Arc<StreamConsumer<SourceContext>>,
    pub trackers: Arc<TrackerMap>,
    pub senders: Vec<mpsc::Sender<Dispatched>>,
    pub status: Arc<AgentStatus>,
    pub commit_interval: Duration,
    pub tables: Vec<Arc<TableRuntime>>,
    pub manager: Option<Arc<TableManager>>,
    pub assignments: Option<mpsc::UnboundedReceiver<Assignment>>,
    pub control: Option<mpsc::UnboundedReceiver<SourceControl>>,
    /// Exactly-once: no commits of our own, the coordinator's transactions commit.
    pub transactional: bool,
    recoveries: tokio::task::JoinSet<Recovered>,
    topics: HashMap<String, Arc<str>>,
    /// The partition of the previous event: most events follow one of the same.
    last: Option<Arc<PartitionTracker>>,
    /// Rewinds whose seek failed, retried at the next commit tick.
    pending_seeks: Vec<(Arc<str>, i32, Rewind)>,
    /// Consumer errors and failed seeks, which can repeat at every poll or tick.
    log: Arc<Throttled<LoopLog>>,
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
            consumer,
            trackers,
            senders,
            status,
            commit_interval,
            tables: Vec::new(),
            manager: None,
            assignments: None,
            control: None,
            transactional: false,
            recoveries: tokio::task::JoinSet::new(),
            topics: HashMap::new(),
            last: None,
            pending_seeks: Vec::new(),
            log: Throttled::new(LoopLog {
                agent: agent.clone(),
            }),
            agent,
        }
    }

    pub async fn run(&mut self, mut shutdown: watch::Receiver<bool>) {
        let mut commit_tick = tokio::time::interval(self.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let consumer = self.consumer.clone();
        let mut assignments = self.assignments.take();
        let mut control = self.control.take();
        loop {
            let msg = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => break,
                Some(c) = recv_opt(&mut control) => {
                    self.obey(c);
                    continue;
                }
                Some(a) = recv_opt(&mut assignments) => {
                    for (p, topics) in a {
                        self.recover(p, topics, Duration::ZERO);
                    }
                    continue;
                }
                Some(done) = self.recoveries.join_next(), if !self.recoveries.is_empty() => {
                    self.recovered(done);
                    continue;
                }
                _ = commit_tick.tick() => {
                    self.rewind_if_asked();
                    if !self.transactional {
                        self.commit(CommitMode::Async);
                    }
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
                    // The coordinator may need this loop (an abort) while the agent
                    // waits for it (the barrier): keep listening while the queue is full.
                    let sender = self.senders[instance].clone();
                    let send = sender.send(d);
                    tokio::pin!(send);
                    loop {
                        tokio::select! {
                            biased;
                            _ = shutdown.wait_for(|s| *s) => return,
                            Some(c) = recv_opt(&mut control) => self.obey(c),
                            r = &mut send => {
                                if r.is_err() {
                                    return;
                                }
                                break;
                            }
                        }
                    }
                }
                Err(e) => self.log_consume_error(&e),
            }
            if self.trackers.attention.load(Ordering::Acquire) {
                self.rewind_if_asked();
            }
        }
    }

    fn obey(&mut self, c: SourceControl) {
        match c {
            SourceControl::Abort(done) => {
                for t in self.trackers.all() {
                    if let Some(target) = t.reset_to_committed() {
                        let reason = "transaction aborted".to_string();
                        self.pending_seeks.push((
                            t.topic.clone(),
                            t.partition,
                            Rewind {
                                offset: target,
                                reason,
                            },
                        ));
                    }
                }
                self.seek_pending();
                let _ = done.send(());
            }
        }
    }

    /// Opens and recovers the table partitions of `p`, then resumes `p` (see `recovered`).
    fn recover(&mut self, p: i32, topics: Vec<String>, after: Duration) {
        let (Some(manager), tables) = (self.manager.clone(), self.tables.clone()) else {
            return;
        };
        self.recoveries.spawn(async move {
            tokio::time::sleep(after).await;
            let result = tokio::task::spawn_blocking(move || {
                let mut records = 0;
                for t in &tables {
                    records += manager
                        .assign_blocking(t, p)
                        .map_err(|e| format!("table {}: {e}", t.name))?;
                }
                Ok(records)
            })
            .await
            .unwrap_or_else(|e| Err(format!("recovery task failed: {e}")));
            (p, topics, result)
        });
    }

    fn recovered(&mut self, done: Result<Recovered, tokio::task::JoinError>) {
        let Ok((p, topics, result)) = done else {
            return;
        };
        match result {
            Ok(records) => {
                let mut tpl = TopicPartitionList::new();
                for t in &topics {
                    tpl.add_partition(t, p);
                }
                tracing::info!(agent = %self.agent, partition = p, records, "tables ready; resuming partition");
                // A partition revoked meanwhile is no longer ours to resume.
                let _ = self.consumer.resume(&tpl);
            }
            Err(e) => {
                tracing::error!(agent = %self.agent, partition = p, "table recovery failed, retrying in 5 s: {e}");
                self.status
                    .record_failure(format!("table recovery of partition {p}: {e}"));
                self.recover(p, topics, Duration::from_secs(5));
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
        let instance = instance_for(m.topic(), m.partition(), self.senders.len());
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
        let error = e.to_string();
        // A pattern that no topic matches yet: the error callback has said so (it is not
        // a fault), and it comes back at every poll until a topic is created.
        if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)
            && self
                .consumer
                .subscription()
                .is_ok_and(|s| s.elements().iter().any(|t| t.topic().starts_with('^')))
        {
            tracing::debug!(agent = %self.agent, "consumer: {error}");
            return;
        }
        // librdkafka reports a down broker on every poll: the first lines, then summaries.
        let verdict = self
            .log
            .hit(LoopEvent::ConsumerError, &error, || error.clone());
        if verdict.is_full() {
            tracing::warn!(agent = %self.agent, "consumer error: {error}{}", verdict.note());
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
        self.seek_pending();
    }

    fn seek_pending(&mut self) {
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
                        let error = e.to_string();
                        let line = format!(
                            "seek of {topic}[{partition}] to {} failed ({error}); retrying",
                            r.offset
                        );
                        let verdict = self.log.hit(LoopEvent::SeekFailed, &error, || line.clone());
                        if verdict.is_full() {
                            tracing::warn!(agent = %self.agent, "{line}{}", verdict.note());
                        }
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
        match self.consumer.commit(&tpl, mode) {
            Ok(()) => AgentStatus::incr(&self.status.commits),
            Err(e) => {
                AgentStatus::incr(&self.status.commit_failures);
                tracing::warn!(agent = %self.agent, "offset commit failed: {e}");
            }
        }
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Orders to an agent's consumer loop, carried out between two dispatches.
pub(crate) enum SourceControl {
    /// Forget uncommitted work and seek every partition back to its last commit.
    Abort(oneshot::Sender<()>),
}

/// An agent's Kafka source under exactly-once: its consumer, its partitions' trackers,
/// and the channel to its consumer loop.
pub(crate) struct SourceHandle {
    pub consumer: Arc<StreamConsumer<SourceContext>>,
    pub trackers: Arc<TrackerMap>,
    pub control: mpsc::UnboundedSender<SourceControl>,
}

impl TransactionalSource for SourceHandle {
    fn committable(&self) -> Vec<(Arc<PartitionTracker>, i64)> {
        self.trackers
            .all()
            .into_iter()
            .filter_map(|t| t.committable().map(|o| (t, o)))
            .collect()
    }

    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    fn abort(&self) -> Option<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        self.control.send(SourceControl::Abort(tx)).ok().map(|_| rx)
    }
}
