//! Errors: the service's own (start-up, binding) and the API's (HTTP status + Confluent
//! `error_code` + message, spec §2.2 and §2.4).

use serde_json::json;

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

/// An error answer of the REST API: `{"error_code": .., "message": ..}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub error_code: u32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, error_code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error_code,
            message: message.into(),
        }
    }
    pub fn not_found_path() -> Self {
        Self::new(404, 404, "HTTP 404 Not Found")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(405, 405, "HTTP 405 Method Not Allowed")
    }
    pub fn not_acceptable() -> Self {
        Self::new(406, 406, "HTTP 406 Not Acceptable")
    }
    pub fn unsupported_media_type() -> Self {
        Self::new(415, 415, "HTTP 415 Unsupported Media Type")
    }
    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(413, 413, format!("Request body larger than {limit} bytes"))
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, 400, message)
    }
    pub fn topic_not_found() -> Self {
        Self::new(404, 40401, "Topic not found.")
    }
    pub fn partition_not_found() -> Self {
        Self::new(404, 40402, "Partition not found.")
    }
    pub fn records_empty() -> Self {
        Self::new(422, 422, "records may not be empty")
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
    pub fn invalid_schema(detail: impl std::fmt::Display) -> Self {
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
    pub fn internal() -> Self {
        Self::new(500, 500, "Internal Server Error")
    }

    pub fn body(&self) -> String {
        json!({"error_code": self.error_code, "message": self.message}).to_string()
    }
}
