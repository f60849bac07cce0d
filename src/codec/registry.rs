//! Schema Registry client (Confluent REST API v1): register schemas under subjects and
//! fetch them by id, both cached, so that a steady stream costs no HTTP round trip.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use serde::Deserialize;
use thiserror::Error;

use crate::http::client::{excerpt, Backoff, RestClient, Timeouts, Unreachable};
use crate::http::encode_segment;

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("schema registry at {url} is unreachable after {attempts} attempts: {message}")]
    Unreachable {
        url: String,
        attempts: u32,
        message: String,
    },
    #[error(
        "schema registry at {url} answered HTTP {status} (error_code {error_code}): {message}"
    )]
    Api {
        url: String,
        status: u16,
        error_code: i64,
        message: String,
    },
    #[error("schema registry at {url} sent an unreadable answer: {message}")]
    BadResponse { url: String, message: String },
    #[error("schema {id} from the registry is not a valid Avro schema: {message}")]
    InvalidSchema { id: i32, message: String },
    #[error("no schema registry URL is configured (services.schema_registry)")]
    NotConfigured,
}

impl From<Unreachable> for RegistryError {
    fn from(e: Unreachable) -> Self {
        RegistryError::Unreachable {
            url: e.url,
            attempts: e.attempts,
            message: e.message,
        }
    }
}

impl RegistryError {
    /// Not found (subject, version or schema id): the data refers to something that
    /// does not exist, as opposed to the registry being unavailable.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::Api { status: 404, .. })
    }

    /// Worth retrying later: the service is down or failing, not the request.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: i64,
    message: String,
}

#[derive(Deserialize)]
struct IdBody {
    id: i32,
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
}

/// One registered version of a subject.
#[derive(Debug, Clone, Deserialize)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema: String,
}

pub struct SchemaRegistryClient {
    /// `None`: an in-process registry (the test driver's; Confluent's `mock://`), whose
    /// schemas live in the caches below and nowhere else.
    http: Option<RestClient>,
    by_id: RwLock<HashMap<i32, Arc<Schema>>>,
    ids: RwLock<HashMap<(String, String), i32>>,
}

impl SchemaRegistryClient {
    pub fn new(base_url: &str) -> Result<Self, RegistryError> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        if base.is_empty() {
            return Err(RegistryError::NotConfigured);
        }
        let http = RestClient::new(
            "schema registry",
            &base,
            Timeouts {
                request: Duration::from_secs(10),
                connect: Some(Duration::from_secs(3)),
            },
            Backoff {
                attempts: 5,
                first: Duration::from_millis(200),
                max: Duration::from_secs(3),
            },
        )
        .map_err(|e| RegistryError::BadResponse {
            url: base.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            http: Some(http),
            by_id: RwLock::default(),
            ids: RwLock::default(),
        })
    }

    /// A registry inside the process: schemas registered through it get ids 1, 2, ... and
    /// are known to it alone (unit tests, the test driver).
    pub fn in_memory() -> Self {
        Self {
            http: None,
            by_id: RwLock::default(),
            ids: RwLock::default(),
        }
    }

    fn http(&self, path: &str) -> Result<&RestClient, RegistryError> {
        self.http.as_ref().ok_or_else(|| RegistryError::Api {
            url: format!("memory:{path}"),
            status: 404,
            error_code: 40401,
            message: "not in the in-memory registry".into(),
        })
    }

    /// Registers in the in-memory registry: the id it already has, else the next one.
    fn register_locally(&self, subject: &str, schema_text: &str) -> Result<i32, RegistryError> {
        let parsed = Schema::parse_str(schema_text).map_err(|e| RegistryError::Api {
            url: format!("memory:/subjects/{subject}/versions"),
            status: 422,
            error_code: 42201,
            message: format!("invalid schema: {e}"),
        })?;
        let mut ids = self.ids.write().expect("lock");
        let canonical = parsed.canonical_form();
        let known = ids.iter().find_map(|((_, text), id)| {
            Schema::parse_str(text)
                .is_ok_and(|s| s.canonical_form() == canonical)
                .then_some(*id)
        });
        let id = known.unwrap_or_else(|| ids.values().max().copied().unwrap_or(0) + 1);
        ids.insert((subject.to_string(), schema_text.to_string()), id);
        self.by_id
            .write()
            .expect("lock")
            .entry(id)
            .or_insert_with(|| Arc::new(parsed));
        Ok(id)
    }

    /// Fewer retries, for command-line tools that should fail fast.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.http = self.http.map(|h| h.with_attempts(attempts));
        self
    }

    pub fn url(&self) -> &str {
        self.http.as_ref().map_or("memory:", RestClient::url)
    }

    /// Registers `schema_text` under `subject` and returns its global id. The registry
    /// answers the existing id for a schema it already holds, so this is idempotent.
    pub async fn register(&self, subject: &str, schema_text: &str) -> Result<i32, RegistryError> {
        let cache_key = (subject.to_string(), schema_text.to_string());
        if let Some(id) = self.ids.read().expect("lock").get(&cache_key) {
            return Ok(*id);
        }
        if self.http.is_none() {
            return self.register_locally(subject, schema_text);
        }
        let path = format!("/subjects/{}/versions", encode_segment(subject));
        let body = serde_json::json!({ "schema": schema_text });
        let IdBody { id } = self
            .send_json(reqwest::Method::POST, &path, Some(&body))
            .await?;
        self.ids.write().expect("lock").insert(cache_key, id);
        Ok(id)
    }

    /// The schema with global id `id`.
    pub async fn schema(&self, id: i32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(s) = self.by_id.read().expect("lock").get(&id) {
            return Ok(s.clone());
        }
        let path = format!("/schemas/ids/{id}");
        let SchemaBody { schema } = self.send_json(reqwest::Method::GET, &path, None).await?;
        let parsed =
            Arc::new(
                Schema::parse_str(&schema).map_err(|e| RegistryError::InvalidSchema {
                    id,
                    message: e.to_string(),
                })?,
            );
        self.by_id.write().expect("lock").insert(id, parsed.clone());
        Ok(parsed)
    }

    /// The latest version registered under `subject`.
    pub async fn latest(&self, subject: &str) -> Result<SubjectVersion, RegistryError> {
        let path = format!("/subjects/{}/versions/latest", encode_segment(subject));
        self.send_json(reqwest::Method::GET, &path, None).await
    }

    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        self.send_json(reqwest::Method::GET, "/subjects", None)
            .await
    }

    /// One request, retried on connection failures and 5xx answers; a success's JSON
    /// body, or the registry's error.
    async fn send_json<T: for<'de> Deserialize<'de>>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, RegistryError> {
        let http = self.http(path)?;
        let mut call = http.call(method, path).accept(CONTENT_TYPE);
        if let Some(b) = body {
            call = call.body(CONTENT_TYPE, b.to_string());
        }
        let answer = call.send().await?;
        let url = http.endpoint(path);
        if (200..300).contains(&answer.status) {
            return serde_json::from_slice(&answer.body).map_err(|e| RegistryError::BadResponse {
                url,
                message: e.to_string(),
            });
        }
        let (error_code, message) = match serde_json::from_slice::<ErrorBody>(&answer.body) {
            Ok(b) => (b.error_code, b.message),
            Err(_) => (i64::from(answer.status), excerpt(&answer.body)),
        };
        Err(RegistryError::Api {
            url,
            status: answer.status,
            error_code,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_registry_names_its_url() {
        // Port 9 (discard) is closed on loopback: the client must retry, then say where.
        let c = SchemaRegistryClient::new("http://127.0.0.1:9")
            .unwrap()
            .with_attempts(2);
        let e = c.schema(1).await.unwrap_err();
        assert!(e.is_transient());
        assert!(e.to_string().contains("http://127.0.0.1:9"), "{e}");
    }

    #[test]
    fn empty_url_is_not_configured() {
        assert!(matches!(
            SchemaRegistryClient::new(" "),
            Err(RegistryError::NotConfigured)
        ));
    }
}
