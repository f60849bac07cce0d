//! The weather station: once per simulated hour it reads its (random-walk) instruments
//! and posts the reading to the Kafka REST Proxy, as hardware that cannot speak Kafka
//! would (reference §3.4). A failed post is retried with backoff and reported; it never
//! stops the agent, which goes on with the next hour.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Datelike;
use cta_stream::prelude::*;
use serde_json::json;

use super::cta::model::weather::Weather;
use super::cta::producer::{parse_max_lag, rng_from, stale};
use super::cta::records::{EventKey, SimTick, WeatherValue};

const AVRO_V2: &str = "application/vnd.kafka.avro.v2+json";
const ACCEPT_V2: &str = "application/vnd.kafka.v2+json";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeatherParams {
    #[serde(default = "default_topic")]
    topic: String,
    #[serde(default = "default_key_schema")]
    key_schema: PathBuf,
    #[serde(default = "default_value_schema")]
    value_schema: PathBuf,
    /// Posts of one reading before it is given up (with backoff 0.5s, 1s, 2s, ...).
    #[serde(default = "default_attempts")]
    attempts: u32,
    #[serde(default = "default_max_lag")]
    max_lag: String,
    seed: Option<u64>,
}

fn default_topic() -> String {
    "org.chicago.cta.weather.v1".into()
}
fn default_key_schema() -> PathBuf {
    "schemas/weather_key.json".into()
}
fn default_value_schema() -> PathBuf {
    "schemas/weather_value.json".into()
}
fn default_attempts() -> u32 {
    5
}
fn default_max_lag() -> String {
    "1m".into()
}

/// A schema file as the compact JSON string the REST Proxy expects in `*_schema`.
fn schema_string(ctx: &AgentContext, path: &std::path::Path) -> anyhow::Result<String> {
    let path = ctx.app_settings().resolve_path(path);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the schema file {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("the schema file {} is not JSON", path.display()))?;
    Ok(json.to_string())
}

pub async fn cta_weather(ctx: AgentContext, mut clock: Stream<SimTick>) -> AgentResult {
    let p: WeatherParams = ctx.params()?;
    let max_lag = parse_max_lag(&ctx, &p.max_lag)?;
    let key_schema = schema_string(&ctx, &p.key_schema)?;
    let value_schema = schema_string(&ctx, &p.value_schema)?;
    let base = ctx.app_settings().rest_proxy_url();
    if base.trim().is_empty() {
        bail!(
            "agent {} posts to a REST Proxy: set services.rest_proxy or embedded.rest_proxy in {}",
            ctx.name(),
            ctx.app_settings().source
        );
    }
    let topic = ctx.topic(&p.topic);
    let url = format!("{}/topics/{topic}", base.trim_end_matches('/'));
    // The broker may not create topics on first produce; the proxy then answers 404.
    ctx.ensure_topics(std::slice::from_ref(&topic)).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .context("cannot build the HTTP client")?;
    let mut rng = rng_from(p.seed);
    let mut weather: Option<Weather> = None;
    let mut skipped = 0;
    while let Some(tick) = clock.next().await? {
        if stale(&ctx, &tick.value, max_lag, &mut skipped) || !tick.value.starts_an_hour() {
            continue;
        }
        let month = tick.value.time().month();
        let w = weather.get_or_insert_with(|| Weather::new(month));
        w.advance(month, &mut rng);
        let body = json!({
            "key_schema": key_schema,
            "value_schema": value_schema,
            "records": [{
                "key": EventKey::now(),
                "value": WeatherValue {
                    temperature: w.temperature,
                    status: w.status.as_str().into(),
                },
            }],
        });
        match post(&http, &url, &body, p.attempts.max(1)).await {
            Ok(()) => {
                tracing::debug!(temperature = w.temperature, status = ?w.status, "weather posted")
            }
            Err(e) => tracing::error!(%url, "weather reading lost: {e}"),
        }
    }
    Ok(())
}
register_agent!("cta_weather", cta_weather);

/// Posts `body`, retrying failures worth retrying (the proxy unreachable, a 5xx, a 408
/// from a registry that is down); a 4xx other than 408 is a bug in the request, not
/// worth repeating.
async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    attempts: u32,
) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(500);
    let mut last = String::new();
    for attempt in 1..=attempts {
        let res = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, AVRO_V2)
            .header(reqwest::header::ACCEPT, ACCEPT_V2)
            .body(body.to_string())
            .send()
            .await;
        let retry = match res {
            Ok(r) if r.status().is_success() => {
                let answer: serde_json::Value = r.json().await.unwrap_or_default();
                match answer["offsets"][0]["error"].as_str() {
                    None => return Ok(()),
                    Some(e) => {
                        last = format!("the proxy could not produce the record: {e}");
                        true
                    }
                }
            }
            Ok(r) => {
                let status = r.status();
                last = format!("HTTP {status}: {}", r.text().await.unwrap_or_default());
                status.is_server_error() || status.as_u16() == 408
            }
            Err(e) => {
                last = format!("cannot reach the REST Proxy: {e}");
                true
            }
        };
        if !retry {
            break;
        }
        if attempt < attempts {
            tracing::warn!(%url, attempt, attempts, "weather post failed, retrying in {delay:?}: {last}");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
    Err(anyhow!("POST {url} failed: {last}"))
}

#[cfg(test)]
mod driver_tests {
    use crate::agents::cta::driver;
    use crate::tables::cta::Weather as WeatherTable;

    const TOPIC: &str = "org.chicago.cta.weather.v1";

    /// Through the REST Proxy API the driver serves over its broker: one reading per
    /// simulated hour, Avro on the weather topic, followed by the global table.
    #[tokio::test]
    async fn the_station_posts_one_reading_per_simulated_hour_through_the_rest_proxy() {
        let mut t = driver::start(&["cta_weather"]).await;
        // 2025-12-01 00:00 UTC; 25 five-minute steps cross the hour three times
        // (00:00, 01:00, 02:00).
        driver::run_clock(&mut t, 1_764_547_200_000, 0..25).await;
        // Avro records, read back through the global table that follows the topic (its
        // keys are wall-clock times: readings posted in one millisecond share one).
        assert_eq!(t.records(TOPIC).len(), 3);
        let held = t.table::<WeatherTable>().await.unwrap();
        assert!(!held.is_empty());
        let statuses = ["sunny", "partly_cloudy", "cloudy", "windy", "precipitation"];
        for (_, w) in &held {
            assert!(statuses.contains(&w.status.as_str()), "{w:?}");
            assert!((-40.0..=110.0).contains(&w.temperature), "{w:?}");
        }
        let s = t.status("cta_weather").unwrap();
        assert_eq!((s.events_in, s.restarts), (25, 0));
    }
}
