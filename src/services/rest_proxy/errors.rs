//! Errors: the service's own (start-up, binding) and the API's (HTTP status + Confluent
//! `error_code` + message, spec §2.2 and §2.4).

/// What can go wrong starting the embedded REST Proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyServiceError {
    #[error("rest proxy: cannot create a Kafka client for {bootstrap}: {message}")]
    Kafka { bootstrap: String, message: String },
    #[error("rest proxy: cannot bind the HTTP address {addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("rest proxy: schema registry client: {0}")]
    Registry(String),
}

pub use crate::services::confluent_api::ApiError;

/// The REST Proxy's own error answers (Confluent REST Proxy v2 codes).
impl ApiError {
    pub fn topic_not_found() -> Self {
        Self::new(404, 40401, "Topic not found.")
    }
    pub fn partition_not_found() -> Self {
        Self::new(404, 40402, "Partition not found.")
    }
    pub fn records_empty() -> Self {
        Self::unprocessable("records may not be empty")
    }
    pub fn key_schema_missing() -> Self {
        Self::new(
            422,
            42201,
            "Request includes keys but does not include key schema",
        )
    }
    pub fn value_schema_missing() -> Self {
        Self::new(
            422,
            42202,
            "Request includes values but does not include value schema",
        )
    }
    pub fn conversion_failed(detail: impl std::fmt::Display) -> Self {
        Self::new(
            422,
            42203,
            format!("Conversion of JSON to Avro failed: Failed to convert JSON to Avro: {detail}"),
        )
    }
    /// A key or value schema of a produce request that does not parse (42205; the
    /// registry's invalid schema is [`ApiError::invalid_avro_schema`], 42201).
    pub fn invalid_record_schema(detail: impl std::fmt::Display) -> Self {
        Self::new(422, 42205, format!("Invalid schema: {detail}"))
    }
    pub fn schema_registry_failed(detail: impl std::fmt::Display) -> Self {
        Self::new(
            408,
            40801,
            format!("Schema registration or lookup failed: {detail}"),
        )
    }
    pub fn kafka(detail: impl std::fmt::Display) -> Self {
        Self::new(500, 50002, format!("Kafka error: {detail}"))
    }
    pub fn kafka_retriable(detail: impl std::fmt::Display) -> Self {
        Self::new(500, 50003, format!("Retriable Kafka error: {detail}"))
    }
}
