//! Kafka Connect REST client (spec §3): declares connectors idempotently, waits for their
//! tasks, reports a failed task with its trace, and deletes them.
//!
//! `PUT /connectors/{name}/config` creates or updates in one call; the client first reads
//! the current config so that an unchanged connector is left alone (no task restart).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::http::client::{Backoff, RestClient, Timeouts, Unreachable};
use crate::http::encode_segment;

/// A connector's configuration: Connect keeps every value as a string.
pub type ConnectorConfig = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("Kafka Connect at {url} is unreachable after {attempts} attempts: {message}")]
    Unreachable {
        url: String,
        attempts: u32,
        message: String,
    },
    #[error("Kafka Connect at {url} answered HTTP {status} for {what}: {message}")]
    Api {
        url: String,
        what: String,
        status: u16,
        message: String,
    },
    #[error("connector {name} failed ({which}): {trace}")]
    Failed {
        name: String,
        which: String,
        trace: String,
    },
    #[error(
        "connector {name} is not running after {waited:?} (connector {connector}, tasks {tasks})"
    )]
    NotRunning {
        name: String,
        waited: Duration,
        connector: String,
        tasks: String,
    },
    #[error("Kafka Connect at {url} sent an unreadable answer for {what}: {message}")]
    BadResponse {
        url: String,
        what: String,
        message: String,
    },
}

impl From<Unreachable> for ConnectError {
    fn from(e: Unreachable) -> Self {
        ConnectError::Unreachable {
            url: e.url,
            attempts: e.attempts,
            message: e.message,
        }
    }
}

/// What `apply` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TaskState {
    pub id: i64,
    pub state: String,
    #[serde(default)]
    pub worker_id: String,
    #[serde(default)]
    pub trace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConnectorState {
    pub state: String,
    #[serde(default)]
    pub worker_id: String,
    #[serde(default)]
    pub trace: Option<String>,
}

/// `GET /connectors/{name}/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectorStatus {
    pub name: String,
    pub connector: ConnectorState,
    #[serde(default)]
    pub tasks: Vec<TaskState>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

impl ConnectorStatus {
    /// The connector and at least one task run, none failed.
    pub fn is_running(&self) -> bool {
        self.connector.state == "RUNNING"
            && !self.tasks.is_empty()
            && self.tasks.iter().all(|t| t.state == "RUNNING")
    }

    /// The first failure, connector first, with its trace.
    pub fn failure(&self) -> Option<(String, String)> {
        if self.connector.state == "FAILED" {
            return Some((
                "connector".into(),
                self.connector.trace.clone().unwrap_or_default(),
            ));
        }
        self.tasks.iter().find(|t| t.state == "FAILED").map(|t| {
            (
                format!("task {}", t.id),
                t.trace.clone().unwrap_or_default(),
            )
        })
    }

    fn task_states(&self) -> String {
        let states: Vec<String> = self
            .tasks
            .iter()
            .map(|t| format!("{}={}", t.id, t.state))
            .collect();
        if states.is_empty() {
            "none yet".into()
        } else {
            states.join(", ")
        }
    }
}

pub struct ConnectClient {
    http: RestClient,
}

/// Connect answers 409 while its group rebalances: worth retrying, as is a 5xx.
fn retriable(status: u16) -> bool {
    status == 409 || status >= 500
}

impl ConnectClient {
    pub fn new(base_url: &str) -> Result<Self, ConnectError> {
        let http = RestClient::new(
            "Kafka Connect",
            base_url,
            Timeouts {
                request: Duration::from_secs(100),
                connect: None,
            },
            Backoff {
                attempts: 5,
                first: Duration::from_millis(250),
                max: Duration::from_secs(5),
            },
        )
        .map_err(|e| ConnectError::Unreachable {
            url: base_url.to_string(),
            attempts: 0,
            message: e.to_string(),
        })?;
        Ok(Self { http })
    }

    pub fn url(&self) -> &str {
        self.http.url()
    }

    /// Sends a request, retrying connection failures, 409s and 5xx with backoff; returns
    /// the status and the body (JSON, a string when it is not JSON, Null when empty).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ConnectError> {
        let mut call = self.http.call(method, path).retry_status(retriable);
        if let Some(b) = body {
            call = call.body("application/json", b.to_string());
        }
        let answer = call.send().await?;
        let text = String::from_utf8_lossy(&answer.body);
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
        };
        Ok((answer.status, json))
    }

    fn api(&self, what: &str, status: u16, body: &Value) -> ConnectError {
        ConnectError::Api {
            url: self.url().to_string(),
            what: what.to_string(),
            status,
            message: message_of(body),
        }
    }

    /// Names of the connectors.
    pub async fn list(&self) -> Result<Vec<String>, ConnectError> {
        let (status, body) = self.call(reqwest::Method::GET, "/connectors", None).await?;
        if status != 200 {
            return Err(self.api("GET /connectors", status, &body));
        }
        serde_json::from_value(body).map_err(|e| ConnectError::BadResponse {
            url: self.url().to_string(),
            what: "GET /connectors".into(),
            message: e.to_string(),
        })
    }

    /// The connector's config, `None` when there is no such connector.
    pub async fn config(&self, name: &str) -> Result<Option<ConnectorConfig>, ConnectError> {
        let path = format!("/connectors/{}/config", encode_segment(name));
        let (status, body) = self.call(reqwest::Method::GET, &path, None).await?;
        match status {
            200 => Ok(Some(string_map(&body))),
            404 => Ok(None),
            _ => Err(self.api(&format!("GET {path}"), status, &body)),
        }
    }

    /// Creates the connector, or updates it when its config differs; an identical
    /// connector is left as it is.
    pub async fn apply(
        &self,
        name: &str,
        config: &ConnectorConfig,
    ) -> Result<Applied, ConnectError> {
        let mut wanted = config.clone();
        wanted.insert("name".into(), name.to_string());
        if let Some(current) = self.config(name).await? {
            if current == wanted {
                return Ok(Applied::Unchanged);
            }
        }
        let path = format!("/connectors/{}/config", encode_segment(name));
        let body = serde_json::to_value(&wanted).unwrap_or_default();
        let (status, answer) = self.call(reqwest::Method::PUT, &path, Some(&body)).await?;
        match status {
            201 => Ok(Applied::Created),
            200 => Ok(Applied::Updated),
            _ => Err(self.api(&format!("PUT {path}"), status, &answer)),
        }
    }

    /// The connector's status, `None` when Connect has none (unknown, or just created).
    pub async fn status(&self, name: &str) -> Result<Option<ConnectorStatus>, ConnectError> {
        let path = format!("/connectors/{}/status", encode_segment(name));
        let (status, body) = self.call(reqwest::Method::GET, &path, None).await?;
        match status {
            200 => serde_json::from_value(body)
                .map(Some)
                .map_err(|e| ConnectError::BadResponse {
                    url: self.url().to_string(),
                    what: format!("GET {path}"),
                    message: e.to_string(),
                }),
            404 => Ok(None),
            _ => Err(self.api(&format!("GET {path}"), status, &body)),
        }
    }

    /// Waits until the connector and all its tasks run; a FAILED one ends the wait with
    /// its trace.
    pub async fn wait_running(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<ConnectorStatus, ConnectError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last: Option<ConnectorStatus> = None;
        loop {
            if let Some(s) = self.status(name).await? {
                if let Some((which, trace)) = s.failure() {
                    return Err(ConnectError::Failed {
                        name: name.to_string(),
                        which,
                        trace,
                    });
                }
                if s.is_running() {
                    return Ok(s);
                }
                last = Some(s);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ConnectError::NotRunning {
                    name: name.to_string(),
                    waited: timeout,
                    connector: last
                        .as_ref()
                        .map(|s| s.connector.state.clone())
                        .unwrap_or_else(|| "without status".into()),
                    tasks: last
                        .as_ref()
                        .map(ConnectorStatus::task_states)
                        .unwrap_or_else(|| "none yet".into()),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deletes the connector; `false` when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool, ConnectError> {
        let path = format!("/connectors/{}", encode_segment(name));
        let (status, body) = self.call(reqwest::Method::DELETE, &path, None).await?;
        match status {
            204 | 200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.api(&format!("DELETE {path}"), status, &body)),
        }
    }
}

/// Connect's error body is `{"error_code": .., "message": ..}`.
fn message_of(body: &Value) -> String {
    match body {
        Value::Object(m) => m
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string()),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn string_map(body: &Value) -> ConnectorConfig {
    body.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_status_tells_running_from_failed() {
        let running: ConnectorStatus = serde_json::from_value(json!({
            "name": "stations",
            "connector": {"state": "RUNNING", "worker_id": "connect:8083"},
            "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "connect:8083"}],
            "type": "source"}))
        .unwrap();
        assert!(running.is_running());
        assert_eq!(running.failure(), None);
        let failed: ConnectorStatus = serde_json::from_value(json!({
            "name": "stations",
            "connector": {"state": "RUNNING", "worker_id": "connect:8083"},
            "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "w"},
                      {"id": 1, "state": "FAILED", "worker_id": "w",
                       "trace": "org.apache.kafka.connect.errors.ConnectException: boom\n\tat x"}],
            "type": "source"}))
        .unwrap();
        assert!(!failed.is_running());
        let (which, trace) = failed.failure().unwrap();
        assert_eq!(which, "task 1");
        assert!(trace.contains("boom"));
        let starting: ConnectorStatus = serde_json::from_value(json!({
            "name": "s", "connector": {"state": "RUNNING", "worker_id": "w"}, "tasks": []}))
        .unwrap();
        assert!(!starting.is_running(), "no task yet");
    }

    #[test]
    fn configs_compare_as_strings_and_names_are_escaped() {
        let m = string_map(&json!({"name": "s", "batch.max.rows": 500, "x": true}));
        assert_eq!(m["batch.max.rows"], "500");
        assert_eq!(m["x"], "true");
        assert_eq!(encode_segment("stations"), "stations");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(
            message_of(&json!({"error_code": 404, "message": "Connector x not found"})),
            "Connector x not found"
        );
    }
}
