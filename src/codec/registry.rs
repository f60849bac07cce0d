//! Schema Registry client (Confluent REST API v1): register schemas under subjects and
//! fetch them by id, both cached, so that a steady stream costs no HTTP round trip.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use serde::Deserialize;
use thiserror::Error;

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
    base: String,
    http: reqwest::Client,
    attempts: u32,
    by_id: RwLock<HashMap<i32, Arc<Schema>>>,
    ids: RwLock<HashMap<(String, String), i32>>,
}

impl SchemaRegistryClient {
    pub fn new(base_url: &str) -> Result<Self, RegistryError> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        if base.is_empty() {
            return Err(RegistryError::NotConfigured);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| RegistryError::BadResponse {
                url: base.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            base,
            http,
            attempts: 5,
            by_id: RwLock::default(),
            ids: RwLock::default(),
        })
    }

    /// Fewer retries, for command-line tools that should fail fast.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Registers `schema_text` under `subject` and returns its global id. The registry
    /// answers the existing id for a schema it already holds, so this is idempotent.
    pub async fn register(&self, subject: &str, schema_text: &str) -> Result<i32, RegistryError> {
        let cache_key = (subject.to_string(), schema_text.to_string());
        if let Some(id) = self.ids.read().expect("lock").get(&cache_key) {
            return Ok(*id);
        }
        let url = format!("{}/subjects/{}/versions", self.base, encode(subject));
        let body = serde_json::json!({ "schema": schema_text });
        let IdBody { id } = self
            .send_json(reqwest::Method::POST, &url, Some(&body))
            .await?;
        self.ids.write().expect("lock").insert(cache_key, id);
        Ok(id)
    }

    /// The schema with global id `id`.
    pub async fn schema(&self, id: i32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(s) = self.by_id.read().expect("lock").get(&id) {
            return Ok(s.clone());
        }
        let url = format!("{}/schemas/ids/{id}", self.base);
        let SchemaBody { schema } = self.send_json(reqwest::Method::GET, &url, None).await?;
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
        let url = format!("{}/subjects/{}/versions/latest", self.base, encode(subject));
        self.send_json(reqwest::Method::GET, &url, None).await
    }

    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let url = format!("{}/subjects", self.base);
        self.send_json(reqwest::Method::GET, &url, None).await
    }

    async fn send_json<T: for<'de> Deserialize<'de>>(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, RegistryError> {
        let mut delay = Duration::from_millis(200);
        let mut last_error = String::new();
        for attempt in 1..=self.attempts {
            let mut req = self
                .http
                .request(method.clone(), url)
                .header(reqwest::header::ACCEPT, CONTENT_TYPE);
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(b.to_string());
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let bytes = resp.bytes().await.map_err(|e| RegistryError::BadResponse {
                        url: url.to_string(),
                        message: e.to_string(),
                    })?;
                    if status.is_success() {
                        return serde_json::from_slice(&bytes).map_err(|e| {
                            RegistryError::BadResponse {
                                url: url.to_string(),
                                message: e.to_string(),
                            }
                        });
                    }
                    let (error_code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                        Ok(b) => (b.error_code, b.message),
                        Err(_) => (
                            i64::from(status.as_u16()),
                            String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                        ),
                    };
                    let err = RegistryError::Api {
                        url: url.to_string(),
                        status: status.as_u16(),
                        error_code,
                        message,
                    };
                    if !err.is_transient() || attempt == self.attempts {
                        return Err(err);
                    }
                    last_error = err.to_string();
                }
                Err(e) => last_error = error_chain(&e),
            }
            if attempt < self.attempts {
                tracing::warn!(url, attempt, error = %last_error, "schema registry request failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
            }
        }
        Err(RegistryError::Unreachable {
            url: self.base.clone(),
            attempts: self.attempts,
            message: last_error,
        })
    }
}

/// Subjects hold dots and dashes, which are path-safe, but may hold anything else too.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_percent_encoded() {
        assert_eq!(
            encode("org.chicago.cta.weather.v1-value"),
            "org.chicago.cta.weather.v1-value"
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

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
