//! The Kafka side of the runtime: client configuration, the worker's shared producer,
//! topic administration and broker health.

pub mod admin;
pub mod client;
pub mod health;
pub mod producer;

pub use admin::{ensure_topics, TopicSpec};
pub use client::{client_config, ClientKind};
pub use health::BrokerHealth;
pub use producer::{OutRecord, SharedProducer};
