//! The Kafka side of the runtime: client configuration, the worker's shared producer,
//! topic administration, broker health, and the names the runtime gives things there.

pub mod admin;
pub mod client;
pub mod health;
pub mod leader;
pub mod names;
pub mod producer;

pub use admin::{ensure_topics, KafkaTopicAdmin, TopicAdmin, TopicSpec};
pub use client::{client_config, ClientKind};
pub use health::BrokerHealth;
pub use leader::KafkaLeader;
pub use names::Names;
pub use producer::{OutRecord, SharedProducer};
