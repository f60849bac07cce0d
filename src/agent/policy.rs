//! The error policy of an agent, applied to an event that could not be decoded or
//! processed: `fail` (deliver it again after a restart), `skip` (log and count) or
//! `dead-letter` (write it to `<app-id>-<agent>-dlq` with headers naming the error).
//!
//! Every such event is counted (`skipped`, `dead_lettered` in `/metrics`); its log line
//! goes through the agent's log throttle, so that a backlog of bad records shows its
//! first lines and then one summary per interval (see `crate::logging::throttle`).

use std::sync::Arc;

use crate::logging::throttle::{LogSite, Summary, Throttled};
use crate::settings::ErrorPolicy;
use crate::stream::ack::AckToken;
use crate::stream::event::RawEvent;
use crate::stream::owner::StreamOwner;
use crate::stream::sink::{DeliveryTag, OutRecord, Producer};

use super::status::AgentStatus;

/// Header names of dead-lettered records.
pub mod headers {
    pub const ERROR: &str = "dlq.error";
    pub const KIND: &str = "dlq.error.kind";
    pub const AGENT: &str = "dlq.agent";
    pub const TOPIC: &str = "dlq.source.topic";
    pub const PARTITION: &str = "dlq.source.partition";
    pub const OFFSET: &str = "dlq.source.offset";
    pub const TIMESTAMP: &str = "dlq.source.timestamp";
}

pub use crate::stream::owner::{Disposition, FailureKind};

/// What the policy did with an event, for the log throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Skipped,
    DeadLettered,
    /// The dead-letter record could not be enqueued: the event is processed again.
    DeadLetterWriteFailed,
}

/// The last event of a summary.
struct LastEvent {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    error: String,
}

/// Writes the summaries of an agent's error-policy lines.
struct PolicyLog {
    agent: String,
    dead_letter_topic: String,
}

impl LogSite for PolicyLog {
    type Cause = (Outcome, FailureKind);
    type Example = LastEvent;

    fn summarize(&self, s: Summary<Self::Cause, LastEvent>) {
        let (outcome, kind) = s.cause;
        let counts = s.counts();
        let e = &s.last;
        match outcome {
            Outcome::Skipped => tracing::warn!(
                agent = %self.agent,
                topic = %e.topic, partition = e.partition, offset = e.offset,
                kind = kind.as_str(),
                suppressed = s.suppressed, suppressed_total = s.total,
                "skipping events: {counts}, each counted in cta_stream_agent_skipped_total; the last: {}",
                e.error
            ),
            Outcome::DeadLettered => tracing::warn!(
                agent = %self.agent,
                topic = %e.topic, partition = e.partition, offset = e.offset,
                dlq = %self.dead_letter_topic,
                kind = kind.as_str(),
                suppressed = s.suppressed, suppressed_total = s.total,
                "dead-lettered events: {counts}, each counted in cta_stream_agent_dead_lettered_total; the last: {}",
                e.error
            ),
            Outcome::DeadLetterWriteFailed => tracing::error!(
                agent = %self.agent,
                topic = %e.topic, partition = e.partition, offset = e.offset,
                dlq = %self.dead_letter_topic,
                kind = kind.as_str(),
                suppressed = s.suppressed, suppressed_total = s.total,
                "cannot write to the dead-letter topic: {counts}; those events will be processed again; the last error: {}",
                e.error
            ),
        }
    }
}

pub struct ErrorHandler {
    pub policy: ErrorPolicy,
    pub agent: String,
    pub dead_letter_topic: String,
    producer: Producer,
    status: Arc<AgentStatus>,
    /// Under exactly-once a dead letter is part of the transaction, not tied to a token.
    transactional: bool,
    log: Arc<Throttled<PolicyLog>>,
}

impl ErrorHandler {
    pub fn new(
        policy: ErrorPolicy,
        agent: &str,
        dead_letter_topic: String,
        producer: Producer,
        status: Arc<AgentStatus>,
        transactional: bool,
    ) -> Self {
        let log = Throttled::new(PolicyLog {
            agent: agent.to_string(),
            dead_letter_topic: dead_letter_topic.clone(),
        });
        Self {
            policy,
            agent: agent.to_string(),
            dead_letter_topic,
            producer,
            status,
            transactional,
            log,
        }
    }

    /// Writes the pending summaries of the agent's error-policy lines (at shutdown).
    pub fn flush_log(&self) {
        self.log.flush();
    }

    /// Whether the line of `raw` is logged in full (else it is counted for a summary).
    fn throttle(
        &self,
        outcome: Outcome,
        kind: FailureKind,
        raw: &RawEvent,
        error: &str,
    ) -> crate::logging::throttle::Verdict {
        self.log.hit((outcome, kind), error, || LastEvent {
            topic: raw.topic.clone(),
            partition: raw.partition,
            offset: raw.offset,
            error: error.to_string(),
        })
    }
}

/// The agent as its streams see it: its counters and this error policy.
#[async_trait::async_trait]
impl StreamOwner for ErrorHandler {
    fn event_in(&self) {
        AgentStatus::incr(&self.status.events_in);
    }

    fn filtered(&self) {
        AgentStatus::incr(&self.status.filtered);
    }

    /// Applies the policy to `raw`. With `skip` the token is dropped (acked); with
    /// `dead-letter` it rides on the dead-letter record and is acked on its delivery.
    async fn dispose(
        &self,
        raw: &RawEvent,
        token: Option<AckToken>,
        kind: FailureKind,
        error: &str,
    ) -> Disposition {
        match self.policy {
            ErrorPolicy::Fail => Disposition::Fail,
            ErrorPolicy::Skip => {
                AgentStatus::incr(&self.status.skipped);
                let verdict = self.throttle(Outcome::Skipped, kind, raw, error);
                if verdict.is_full() {
                    tracing::warn!(
                        agent = %self.agent,
                        topic = %raw.topic, partition = raw.partition, offset = raw.offset,
                        kind = kind.as_str(),
                        "skipping event: {error}{}",
                        verdict.note()
                    );
                }
                Disposition::Skipped
            }
            ErrorPolicy::DeadLetter => {
                let mut rec = OutRecord {
                    topic: self.dead_letter_topic.clone(),
                    partition: None,
                    key: raw.key.as_ref().map(|k| k.to_vec()),
                    value: raw.value.as_ref().map(|v| v.to_vec()),
                    headers: raw.headers.clone(),
                    timestamp: raw.timestamp,
                };
                rec.headers.insert(headers::ERROR, error.to_string());
                rec.headers.insert(headers::KIND, kind.as_str());
                rec.headers.insert(headers::AGENT, self.agent.clone());
                rec.headers.insert(headers::TOPIC, raw.topic.to_string());
                rec.headers
                    .insert(headers::PARTITION, raw.partition.to_string());
                rec.headers.insert(headers::OFFSET, raw.offset.to_string());
                if let Some(ts) = raw.timestamp {
                    rec.headers.insert(headers::TIMESTAMP, ts.to_string());
                }
                let tag = DeliveryTag {
                    token: if self.transactional {
                        None
                    } else {
                        token.clone()
                    },
                    observer: Some(self.status.clone()),
                    on_delivery: None,
                };
                match self.producer.send(&rec, tag).await {
                    Ok(()) => {
                        AgentStatus::incr(&self.status.dead_lettered);
                        let verdict = self.throttle(Outcome::DeadLettered, kind, raw, error);
                        if verdict.is_full() {
                            tracing::warn!(
                                agent = %self.agent,
                                topic = %raw.topic, partition = raw.partition, offset = raw.offset,
                                dlq = %self.dead_letter_topic,
                                kind = kind.as_str(),
                                "dead-lettered event: {error}{}",
                                verdict.note()
                            );
                        }
                        Disposition::DeadLettered
                    }
                    Err(e) => {
                        // Not written anywhere: it must not be acked.
                        if let Some(t) = &token {
                            t.fail(format!("dead-letter write failed: {e}"));
                        }
                        let e = e.to_string();
                        let verdict = self.throttle(Outcome::DeadLetterWriteFailed, kind, raw, &e);
                        if verdict.is_full() {
                            tracing::error!(
                                agent = %self.agent,
                                topic = %raw.topic, partition = raw.partition, offset = raw.offset,
                                dlq = %self.dead_letter_topic,
                                "cannot write to the dead-letter topic ({e}); the event will be processed again{}",
                                verdict.note()
                            );
                        }
                        Disposition::DeadLettered
                    }
                }
            }
        }
    }
}
