//! The connectors of `[connectors]`, declared with Kafka Connect (`services.kafka_connect`):
//! by the worker at start, in the background (Connect may come up after the worker), and
//! by `cta-stream connectors apply`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::services::kafka_connect::{Applied, ConnectClient, ConnectError, ConnectorStatus};
use crate::settings::{ConnectorSettings, Settings};

/// The enabled connectors: (settings key, Connect name, settings).
pub fn enabled(settings: &Settings) -> Vec<(&str, &str, &ConnectorSettings)> {
    settings
        .connectors
        .iter()
        .filter(|(_, c)| c.enabled)
        .map(|(k, c)| (k.as_str(), c.connect_name(k), c))
        .collect()
}

pub fn client(settings: &Settings) -> Result<ConnectClient, String> {
    match settings.services.kafka_connect.trim() {
        "" => Err(format!(
            "no Kafka Connect is configured: set services.kafka_connect in {}",
            settings.source
        )),
        url => ConnectClient::new(url).map_err(|e| e.to_string()),
    }
}

/// Creates or updates one connector and waits until its tasks run.
pub async fn apply(
    client: &ConnectClient,
    name: &str,
    c: &ConnectorSettings,
) -> Result<(Applied, ConnectorStatus), ConnectError> {
    let applied = client.apply(name, &c.config_strings()).await?;
    let status = client.wait_running(name, c.wait).await?;
    Ok((applied, status))
}

/// Declares every enabled connector, retrying while Connect is unreachable or slow; a
/// connector whose task FAILED is reported with its trace and left alone (retrying the
/// same config would fail the same way).
pub async fn declare_all(settings: Arc<Settings>, shutdown: watch::Receiver<bool>) {
    if enabled(&settings).is_empty() {
        return;
    }
    let client = match client(&settings) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("connectors not declared: {e}");
            return;
        }
    };
    for (key, name, c) in enabled(&settings) {
        let mut delay = Duration::from_secs(2);
        loop {
            if *shutdown.borrow() {
                return;
            }
            match apply(&client, name, c).await {
                Ok((applied, status)) => {
                    tracing::info!(
                        connector = name,
                        setting = key,
                        ?applied,
                        tasks = status.tasks.len(),
                        "connector running"
                    );
                    break;
                }
                Err(e @ ConnectError::Failed { .. }) => {
                    tracing::error!(connector = name, setting = key, "{e}");
                    break;
                }
                Err(e @ ConnectError::Api { status: 400, .. }) => {
                    tracing::error!(connector = name, setting = key, "config refused: {e}");
                    break;
                }
                Err(e) => {
                    tracing::warn!(
                        connector = name,
                        setting = key,
                        "{e}; retrying in {delay:?}"
                    );
                    let mut stop = shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}
