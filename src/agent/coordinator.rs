//! Exactly-once, as the agents see it. The coordinator (`crate::transactions`) sits
//! above the agents: it is handed to them as a [`Coordinator`], and it sees each agent's
//! Kafka source as a [`TransactionalSource`] — neither side names the other's types.

use std::sync::Arc;

use rdkafka::consumer::ConsumerGroupMetadata;
use tokio::sync::{oneshot, RwLock};

use crate::stream::ack::PartitionTracker;

/// What agents need of the exactly-once coordinator.
pub trait Coordinator: Send + Sync {
    /// Held for reading while an agent processes an event; the coordinator takes it for
    /// writing to commit, so a commit always falls between two events.
    fn barrier(&self) -> Arc<RwLock<()>>;
    /// The open transaction must not commit (a failure or a rebalance happened).
    fn request_abort(&self, why: &str);
    /// Adds an agent's source to every transaction from now on.
    fn register(&self, source: Box<dyn TransactionalSource>);
}

/// What the coordinator needs of an agent's Kafka source.
pub trait TransactionalSource: Send + Sync {
    /// Each partition's tracker and its committable offset (the next to read).
    fn committable(&self) -> Vec<(Arc<PartitionTracker>, i64)>;
    /// The consumer group's metadata, which the offsets are sent to the transaction with;
    /// `None` while the consumer is not in its group.
    fn group_metadata(&self) -> Option<ConsumerGroupMetadata>;
    /// Asks the source to forget its uncommitted work and seek back to its last commit;
    /// the receiver completes once it has (`None`: the source has stopped).
    fn abort(&self) -> Option<oneshot::Receiver<()>>;
}
