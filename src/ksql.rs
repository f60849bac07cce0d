//! `[ksql]`: when `services.ksqldb` is set, the worker submits the statements file to
//! ksqlDB at start (streams and tables that exist are skipped) before its agents run;
//! the agents the statements replace are disabled by the settings loader.

use std::time::Duration;

use tokio::sync::watch;

use crate::services::ksqldb::{split_statements, Applied, KsqlClient};
use crate::settings::Settings;

/// Submits the statements, retrying while ksqlDB is unreachable (up to the start-up
/// timeout); an error names the server, the statement and ksqlDB's message.
pub async fn submit(settings: &Settings, shutdown: &watch::Receiver<bool>) -> Result<(), String> {
    let url = settings.services.ksqldb.trim();
    let Some(file) = settings
        .ksql
        .statements
        .as_ref()
        .filter(|_| !url.is_empty())
    else {
        return Ok(());
    };
    let path = settings.resolve_path(file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "ksql.statements: cannot read {} (from {}): {e}",
            path.display(),
            settings.source
        )
    })?;
    // The statements name the app's topics as the settings do: `${app.topic_prefix}` puts
    // them in the app's namespace.
    let text =
        crate::settings::namespace::expand(&text, &settings.app.id, &settings.app.topic_prefix)
            .map_err(|e| format!("ksql.statements {}: {e}", path.display()))?;
    let statements = split_statements(&text);
    let client = KsqlClient::new(url).map_err(|e| format!("services.ksqldb: {e}"))?;
    let deadline = tokio::time::Instant::now() + settings.app.startup_timeout;
    let mut delay = Duration::from_secs(1);
    loop {
        match client.apply(&statements).await {
            Ok(applied) => {
                for a in applied {
                    match a {
                        Applied::Created { name } => tracing::info!(%url, name, "ksqlDB: created"),
                        Applied::Skipped { name } => {
                            tracing::info!(%url, name, "ksqlDB: exists, skipped")
                        }
                        Applied::Ran => {}
                    }
                }
                return Ok(());
            }
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                tracing::warn!(%url, "ksqlDB: {e}; retrying in {delay:?}");
                let mut stop = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => return Err("stopped while waiting for ksqlDB".into()),
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(format!("ksqlDB statements of {}: {e}", path.display())),
        }
    }
}
