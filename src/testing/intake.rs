//! What an agent's Kafka consumer loop does, over the driver's broker: partitions
//! assigned and revoked, the agent's tables opened and restored from their changelogs
//! before any event of a partition is handed out, events dispatched with ack tokens,
//! rewinds carried out, acked offsets committed. Same trackers, tokens, queues and tables
//! as a worker; only the broker is in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::broker::MemoryBroker;
use crate::agent::source::instance_for;
use crate::agent::AgentStatus;
use crate::stream::ack::{AckToken, PartitionTracker};
use crate::stream::event::RawEvent;
use crate::stream::typed::Dispatched;
use crate::table::{RecoveryState, TableError, TableManager, TableRuntime};

type TopicPartition = (String, i32);

/// What an agent reads: named topics, or every topic a pattern matches.
pub(crate) enum Subscription {
    Topics(Vec<String>),
    /// A regex, and the agent's stage topics beside it.
    Pattern(regex::Regex, Vec<String>),
}

impl Subscription {
    fn topics(&self, broker: &MemoryBroker) -> Vec<String> {
        match self {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(re, stages) => broker
                .topics()
                .into_iter()
                .filter(|t| re.is_match(t) || stages.contains(t))
                .collect(),
        }
    }
}

pub(crate) struct Intake {
    pub agent: String,
    pub group: String,
    source: Subscription,
    from_beginning: bool,
    read_committed: bool,
    queues: Vec<mpsc::Sender<Dispatched>>,
    status: Arc<AgentStatus>,
    tables: Vec<Arc<TableRuntime>>,
    attention: Arc<AtomicBool>,
    /// Assigned partitions: their tracker and the next offset to read.
    assigned: BTreeMap<TopicPartition, (Arc<PartitionTracker>, i64)>,
    /// Partitions taken away by the test; assigned again by `rebalance`.
    revoked: BTreeSet<TopicPartition>,
    topic_names: BTreeMap<String, Arc<str>>,
    /// The topics the tables follow when not all (a `group_by` agent's repartition
    /// topics), as the worker's consumer has it.
    pub table_topics: Option<Vec<String>>,
}

impl Intake {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        agent: &str,
        group: String,
        source: Subscription,
        from_beginning: bool,
        read_committed: bool,
        queues: Vec<mpsc::Sender<Dispatched>>,
        status: Arc<AgentStatus>,
        tables: Vec<Arc<TableRuntime>>,
    ) -> Self {
        Self {
            agent: agent.to_string(),
            group,
            source,
            from_beginning,
            read_committed,
            queues,
            status,
            tables,
            attention: Arc::default(),
            assigned: BTreeMap::new(),
            revoked: BTreeSet::new(),
            topic_names: BTreeMap::new(),
            table_topics: None,
        }
    }

    /// Assigns every partition of the agent's topics not held yet (and not revoked):
    /// tables first, then reading from the group's committed offset.
    pub fn assign(
        &mut self,
        broker: &MemoryBroker,
        tables: &TableManager,
    ) -> Result<u64, TableError> {
        let mut records = 0;
        for topic in self.source.topics(broker) {
            for p in 0..broker.partitions(&topic) {
                let tp = (topic.clone(), p);
                if self.assigned.contains_key(&tp) || self.revoked.contains(&tp) {
                    continue;
                }
                let follows = self
                    .table_topics
                    .as_ref()
                    .is_none_or(|tt| tt.contains(&topic));
                for t in self.tables.iter().filter(|_| follows) {
                    if t.partition(p).is_none() {
                        records += restore(broker, tables, t, p, self.read_committed)?;
                    }
                }
                let start = broker.committed(&self.group, &topic, p).unwrap_or_else(|| {
                    if self.from_beginning {
                        0
                    } else {
                        broker.end(&topic, p)
                    }
                });
                let name = self.topic_name(&topic);
                let tracker = Arc::new(
                    PartitionTracker::new(name, p, self.attention.clone())
                        .with_latency(self.status.latency.clone()),
                );
                AgentStatus::incr(&self.status.assignments);
                self.assigned.insert(tp, (tracker, start));
            }
        }
        Ok(records)
    }

    fn topic_name(&mut self, topic: &str) -> Arc<str> {
        self.topic_names
            .entry(topic.to_string())
            .or_insert_with(|| Arc::from(topic))
            .clone()
    }

    /// Hands the agent what its partitions hold past their positions, as far as its
    /// queues take; returns how many events.
    pub fn dispatch(&mut self, broker: &MemoryBroker) -> usize {
        self.rewind_if_asked();
        let mut n = 0;
        for ((topic, p), (tracker, position)) in self.assigned.iter_mut() {
            let instance = instance_for(topic, *p, self.queues.len());
            for (offset, r) in broker.read(topic, *p, *position, self.read_committed) {
                // A slot first: a token is only made for an event that reaches the queue.
                let Ok(slot) = self.queues[instance].try_reserve() else {
                    break;
                };
                let raw = RawEvent {
                    key: r.key,
                    value: r.value,
                    topic: tracker.topic.clone(),
                    partition: *p,
                    offset,
                    timestamp: r.timestamp,
                    headers: r.headers,
                };
                let token = AckToken::dispatch(tracker, offset);
                slot.send(Dispatched::new(Arc::new(raw), token));
                *position = offset + 1;
                n += 1;
            }
        }
        n
    }

    fn rewind_if_asked(&mut self) {
        if !self.attention.swap(false, Ordering::AcqRel) {
            return;
        }
        for (tracker, position) in self.assigned.values_mut() {
            if let Some(r) = tracker.take_rewind() {
                AgentStatus::incr(&self.status.rewinds);
                tracing::warn!(agent = %self.agent, "{}[{}] rewound to offset {}: {}", tracker.topic, tracker.partition, r.offset, r.reason);
                *position = r.offset;
            }
        }
    }

    /// At-least-once: commits every partition's acked offset.
    pub fn commit(&self, broker: &MemoryBroker) {
        for ((topic, p), (tracker, _)) in &self.assigned {
            if let Some(o) = tracker.take_committable() {
                broker.commit(&self.group, topic, *p, o);
                AgentStatus::incr(&self.status.commits);
            }
        }
    }

    /// Exactly-once: the offsets the transaction commits.
    pub fn committable(&self) -> Vec<(TopicPartition, Arc<PartitionTracker>, i64)> {
        self.assigned
            .iter()
            .filter_map(|(tp, (t, _))| t.committable().map(|o| (tp.clone(), t.clone(), o)))
            .collect()
    }

    /// Exactly-once, after an abort: every partition back to its last commit.
    pub fn reset_to_committed(&mut self) {
        for (tracker, position) in self.assigned.values_mut() {
            if let Some(target) = tracker.reset_to_committed() {
                *position = target;
            }
        }
    }

    /// Takes `topic[p]` away, as a rebalance does: under at-least-once its acked offset
    /// is committed first; events in hand are left to finish (their acks no longer
    /// count); the tables' partition is closed.
    pub fn revoke(&mut self, broker: &MemoryBroker, topic: &str, p: i32, exactly_once: bool) {
        let tp = (topic.to_string(), p);
        if let Some((tracker, _)) = self.assigned.remove(&tp) {
            if !exactly_once {
                if let Some(o) = tracker.committable() {
                    broker.commit(&self.group, topic, p, o);
                }
            }
            tracker.retire();
            AgentStatus::incr(&self.status.revocations);
        }
        self.revoked.insert(tp);
        if !self.assigned.keys().any(|(_, q)| *q == p) {
            for t in &self.tables {
                t.close(p);
            }
        }
    }

    /// Whether `topic[p]` is one of this agent's source partitions.
    pub fn reads(&self, topic: &str) -> bool {
        self.assigned.keys().any(|(t, _)| t == topic)
    }

    /// Revoked partitions come back (at the next `assign`).
    pub fn rejoin(&mut self) {
        self.revoked.clear();
    }

    /// The process died: nothing in flight counts any more.
    pub fn die(&mut self) {
        for (tracker, _) in self.assigned.values() {
            tracker.retire();
        }
        self.assigned.clear();
    }

    /// Events dispatched and not acked yet.
    pub fn in_flight(&self) -> usize {
        self.assigned.values().map(|(t, _)| t.in_flight()).sum()
    }

    /// Whether a partition holds records not handed out yet.
    pub fn has_backlog(&self, broker: &MemoryBroker) -> bool {
        self.attention.load(Ordering::Acquire)
            || self.assigned.iter().any(|((topic, p), (_, position))| {
                !broker
                    .read(topic, *p, *position, self.read_committed)
                    .is_empty()
            })
    }
}

/// Opens table partition `p` of `t` and replays its changelog into it, as a worker does
/// before it resumes the partition.
pub(crate) fn restore(
    broker: &MemoryBroker,
    tables: &TableManager,
    t: &TableRuntime,
    p: i32,
    read_committed: bool,
) -> Result<u64, TableError> {
    let part = t.open(&tables.stores, p)?;
    let store = part.store().ok_or(TableError::Closed)?;
    let from = store.changelog_offset(p)?.map_or(0, |o| o + 1);
    let mut n = 0;
    for (offset, r) in broker.read(&t.changelog, p, from, read_committed) {
        let Some(key) = r.key else { continue };
        let change = (key.to_vec(), r.value.map(|v| v.to_vec()));
        store.apply(std::slice::from_ref(&change), p, offset)?;
        n += 1;
    }
    part.set_progress(|g| {
        g.state = RecoveryState::Ready;
        g.records = n;
        g.eta_ms = Some(0);
    });
    Ok(n)
}
