//! Where agents' records go: a [`RecordSink`] — the worker's Kafka producer, or the test
//! driver's in-memory topics. A record may carry the ack token of the event that produced
//! it: the event is acked only once the record is delivered, and a failed delivery sends
//! the event round again instead of losing it.

use std::sync::Arc;
use std::time::Duration;

use super::ack::AckToken;
use super::event::Headers;

/// A record ready to be produced.
#[derive(Debug, Clone, Default)]
pub struct OutRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
    pub timestamp: Option<i64>,
}

/// Called with the record's offset once delivered, or the error.
pub type OnDelivery = Box<dyn FnOnce(Result<i64, String>) + Send + Sync>;

/// Who is told that a record could not be delivered, besides its event's token: an
/// agent's counters. The producer sits below the agents and sees them only through this.
pub trait DeliveryObserver: Send + Sync {
    /// The name the logs give it (an agent's).
    fn name(&self) -> &str;
    fn delivery_failed(&self);
}

/// Who a record was produced for: the event to ack, the agent to count against, and
/// what to do once the broker has it (a table applies its write).
#[derive(Default)]
pub struct DeliveryTag {
    pub token: Option<AckToken>,
    pub observer: Option<Arc<dyn DeliveryObserver>>,
    pub on_delivery: Option<OnDelivery>,
}

/// The record could not even be enqueued (the sink is closed or refuses it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EnqueueError(pub String);

#[async_trait::async_trait]
pub trait RecordSink: Send + Sync {
    /// Enqueues `rec`; waits while the sink's queue is full. Delivery is reported to the
    /// tag (its token, observer and callback), not to the caller.
    async fn send(&self, rec: &OutRecord, tag: DeliveryTag) -> Result<(), EnqueueError>;
    /// Waits until every enqueued record is delivered or failed.
    async fn flush(&self, timeout: Duration) -> Result<(), EnqueueError>;
    /// Records enqueued and not yet delivered or failed.
    fn in_flight(&self) -> i32;
}

/// The sink agents and tables share.
pub type Producer = Arc<dyn RecordSink>;
