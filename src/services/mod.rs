pub mod confluent_api;
pub mod kafka_connect;
pub mod ksqldb;
pub mod rest_proxy;
pub mod schema_registry;
