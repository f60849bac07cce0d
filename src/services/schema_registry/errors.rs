//! Errors: the service's own (start-up, binding, the Kafka store) and the API's (HTTP status +
//! Confluent `error_code` + message, see the spec §1.1.2 and §1.3).

/// What can go wrong starting or running the embedded registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryServiceError {
    #[error("schema registry: cannot reach the Kafka broker {bootstrap}: {message}")]
    Kafka { bootstrap: String, message: String },
    #[error("schema registry: cannot create or read the topic {topic}: {message}")]
    Topic { topic: String, message: String },
    #[error("schema registry: cannot bind the HTTP address {addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("schema registry: writing to the topic {topic} failed: {message}")]
    Write { topic: String, message: String },
}

pub use crate::services::confluent_api::ApiError;

/// The Schema Registry's own error answers (Confluent Schema Registry v1 codes).
impl ApiError {
    pub fn subject_not_found(subject: &str) -> Self {
        Self::new(404, 40401, format!("Subject '{subject}' not found."))
    }
    pub fn version_not_found(version: impl std::fmt::Display) -> Self {
        Self::new(404, 40402, format!("Version {version} not found."))
    }
    pub fn schema_id_not_found(id: impl std::fmt::Display) -> Self {
        Self::new(404, 40403, format!("Schema {id} not found"))
    }
    pub fn schema_not_found() -> Self {
        Self::new(404, 40403, "Schema not found")
    }
    pub fn subject_soft_deleted(subject: &str) -> Self {
        Self::new(
            404,
            40404,
            format!(
                "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
            ),
        )
    }
    pub fn version_soft_deleted(subject: &str, version: u32) -> Self {
        Self::new(
            404,
            40406,
            format!(
                "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
            ),
        )
    }
    pub fn no_subject_config(subject: &str) -> Self {
        Self::new(
            404,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    }
    pub fn incompatible(subject: &str, details: &str) -> Self {
        Self::new(
            409,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{details}]"
            ),
        )
    }
    /// A schema the registry does not take (42201), for the reason `message` gives.
    pub fn rejected_schema(message: impl Into<String>) -> Self {
        Self::new(422, 42201, message)
    }
    /// A schema that is not valid Avro (42201; the REST Proxy's invalid schema is
    /// [`ApiError::invalid_record_schema`], 42205).
    pub fn invalid_avro_schema(details: impl std::fmt::Display) -> Self {
        Self::rejected_schema(format!("Invalid schema of type AVRO, details: {details}"))
    }
    pub fn invalid_version(raw: &str) -> Self {
        Self::new(
            422,
            42202,
            format!(
                "The specified version '{raw}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }
    pub fn invalid_level() -> Self {
        Self::new(
            422,
            42203,
            "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive",
        )
    }
    pub fn not_permitted(message: impl Into<String>) -> Self {
        Self::new(422, 42205, message)
    }
    pub fn store(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            50001,
            format!("Error while writing to the Kafka store: {message}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_code_and_message() {
        let e = ApiError::subject_not_found("t-value");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error_code"], 40401);
        assert_eq!(v["message"], "Subject 't-value' not found.");
        assert_eq!(e.status, 404);
    }
}
