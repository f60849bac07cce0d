//! The worker's one producer, shared by all agents. Each record may carry the ack token
//! of the event that produced it: the event is only acked once the record is delivered,
//! and a failed delivery sends the event round again instead of losing it.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::logging::throttle::{LogSite, Summary, Throttled};
use crate::settings::{ProcessingGuarantee, Settings};
use crate::stream::event::Headers;
pub use crate::stream::sink::{
    DeliveryObserver, DeliveryTag, EnqueueError, OnDelivery, OutRecord, RecordSink,
};

use super::client::{client_config, ClientKind};
use super::names::Names;

/// The producer's callbacks. A failed delivery is logged through a throttle: when the
/// broker goes away, every record in flight fails at once.
pub struct DeliveryContext {
    log: Arc<Throttled<DeliveryLog>>,
}

/// Writes the summaries of failed deliveries, per agent and topic.
struct DeliveryLog;

impl LogSite for DeliveryLog {
    /// Agent (or "-"), topic.
    type Cause = (String, String);
    /// The last error.
    type Example = String;

    fn summarize(&self, s: Summary<(String, String), String>) {
        let counts = s.counts();
        let (agent, topic) = &s.cause;
        // Records of no agent (a table's changelog writes) are not in the agents' metrics.
        let counted = if agent == "-" {
            ""
        } else {
            ", each counted in cta_stream_agent_delivery_errors_total"
        };
        tracing::error!(
            agent = %agent,
            topic = %topic,
            suppressed = s.suppressed,
            suppressed_total = s.total,
            "deliveries failed: {counts}{counted}; their source events will be processed again; the last error: {}",
            s.last
        );
    }
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<DeliveryTag>;

    fn delivery(&self, result: &DeliveryResult<'_>, mut tag: Box<DeliveryTag>) {
        if let Some(f) = tag.on_delivery.take() {
            f(match result {
                Ok(m) => Ok(m.offset()),
                Err((e, _)) => Err(e.to_string()),
            });
        }
        if let Err((err, msg)) = result {
            let agent = tag.observer.as_ref().map(|o| o.name()).unwrap_or("-");
            let error = err.to_string();
            let cause = (agent.to_string(), msg.topic().to_string());
            let verdict = self.log.hit(cause, &error, || error.clone());
            if verdict.is_full() {
                tracing::error!(
                    agent,
                    topic = msg.topic(),
                    error = %err,
                    "delivery failed; the source event will be processed again{}",
                    verdict.note()
                );
            }
            if let Some(o) = &tag.observer {
                o.delivery_failed();
            }
            if let Some(t) = &tag.token {
                t.fail(format!("delivery to {} failed: {err}", msg.topic()));
            }
        }
        // Dropping the tag drops its token clone: the event is acked (or rewound) here.
    }
}

#[derive(Clone)]
pub struct SharedProducer {
    inner: Arc<ThreadedProducer<DeliveryContext>>,
}

impl SharedProducer {
    pub fn new(settings: &Settings) -> Result<Self, KafkaError> {
        let mut cfg = client_config(settings, ClientKind::Producer);
        if settings.app.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
            cfg.set("transactional.id", Names::new(settings).transactional_id());
            // A dead worker's open transaction blocks read_committed readers until it
            // times out; keep that short.
            cfg.set("transaction.timeout.ms", "10000");
            cfg.set("message.timeout.ms", "10000");
        }
        let producer: ThreadedProducer<DeliveryContext> =
            cfg.create_with_context(DeliveryContext {
                log: Throttled::new(DeliveryLog),
            })?;
        Ok(Self {
            inner: Arc::new(producer),
        })
    }

    /// Enqueues `rec`; waits while librdkafka's queue is full. Delivery is reported to
    /// the tag's token, not to the caller.
    pub async fn send(&self, rec: &OutRecord, tag: DeliveryTag) -> Result<(), KafkaError> {
        let headers = to_owned_headers(&rec.headers);
        let mut tag = Box::new(tag);
        loop {
            let mut record: BaseRecord<'_, [u8], [u8], Box<DeliveryTag>> =
                BaseRecord::with_opaque_to(&rec.topic, tag);
            if let Some(k) = &rec.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &rec.value {
                record = record.payload(v.as_slice());
            }
            if let Some(p) = rec.partition {
                record = record.partition(p);
            }
            if let Some(ts) = rec.timestamp {
                record = record.timestamp(ts);
            }
            if let Some(h) = &headers {
                record = record.headers(h.clone());
            }
            match self.inner.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    tag = back.delivery_opaque;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Waits until every enqueued record is delivered or failed.
    pub async fn flush_all(&self, timeout: Duration) -> Result<(), KafkaError> {
        let p = self.inner.clone();
        tokio::task::spawn_blocking(move || p.flush(timeout))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }

    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }

    pub fn client(&self) -> &rdkafka::client::Client<DeliveryContext> {
        self.inner.client()
    }

    /// The librdkafka producer itself (transactions).
    pub fn raw(&self) -> &ThreadedProducer<DeliveryContext> {
        &self.inner
    }
}

fn to_owned_headers(h: &Headers) -> Option<OwnedHeaders> {
    if h.is_empty() {
        return None;
    }
    let mut out = OwnedHeaders::new_with_capacity(h.0.len());
    for (k, v) in h.iter() {
        out = out.insert(Header { key: k, value: v });
    }
    Some(out)
}

#[async_trait::async_trait]
impl RecordSink for SharedProducer {
    async fn send(&self, rec: &OutRecord, tag: DeliveryTag) -> Result<(), EnqueueError> {
        SharedProducer::send(self, rec, tag)
            .await
            .map_err(|e| EnqueueError(e.to_string()))
    }

    async fn flush(&self, timeout: Duration) -> Result<(), EnqueueError> {
        self.flush_all(timeout)
            .await
            .map_err(|e| EnqueueError(e.to_string()))
    }

    fn in_flight(&self) -> i32 {
        SharedProducer::in_flight(self)
    }
}
