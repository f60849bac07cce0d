//! What the producers that follow the simulation clock (`cta_trains`, `cta_turnstiles`,
//! `cta_weather`) share: their parameters, the random source, and the rule that skips
//! stale ticks.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use cta_stream::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::data::CtaData;
use super::records::SimTick;

/// Parameters shared by the producers that follow the clock.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerParams {
    /// Directory of the CTA data files (relative to the settings file).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Ticks emitted longer ago than this are skipped (a new consumer group reading an
    /// old clock topic from the start must not replay days of simulation at once).
    #[serde(default = "default_max_lag")]
    pub max_lag: String,
    /// Seed of the random draws (turnstile noise, weather), for reproducible runs.
    pub seed: Option<u64>,
    /// Prefix of the per-station arrival topics (trains only).
    #[serde(default = "default_arrivals_prefix")]
    pub arrivals_prefix: String,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_max_lag() -> String {
    "1m".into()
}
fn default_arrivals_prefix() -> String {
    "org.chicago.cta.station.arrivals.".into()
}

/// The `max_lag` parameter of a producer that follows the clock, as a duration.
pub fn parse_max_lag(ctx: &AgentContext, text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text).map_err(|e| {
        anyhow!(
            "bad setting `agents.{}.params.max_lag` in {}: {e}",
            ctx.name(),
            ctx.app_settings().source
        )
    })
}

impl ProducerParams {
    pub fn load(ctx: &AgentContext) -> anyhow::Result<(Self, CtaData, Duration)> {
        let p: ProducerParams = ctx.params()?;
        let max_lag = parse_max_lag(ctx, &p.max_lag)?;
        let dir = ctx.app_settings().resolve_path(&p.data_dir);
        let data = CtaData::load(&dir)?;
        Ok((p, data, max_lag))
    }

    pub fn rng(&self) -> SmallRng {
        rng_from(self.seed)
    }
}

/// Seeded (reproducible) when a seed is given, from the OS otherwise.
pub fn rng_from(seed: Option<u64>) -> SmallRng {
    match seed {
        Some(s) => SmallRng::seed_from_u64(s),
        None => SmallRng::from_os_rng(),
    }
}

/// Whether a tick is too old to act on; logs the first of a run of stale ticks.
pub fn stale(ctx: &AgentContext, tick: &SimTick, max_lag: Duration, skipped: &mut u64) -> bool {
    let age = Utc::now().timestamp_millis() - tick.emitted_ms;
    if age > max_lag.as_millis() as i64 {
        if *skipped == 0 {
            tracing::info!(
                agent = ctx.name(),
                step = tick.step,
                age_ms = age,
                "skipping stale clock ticks"
            );
        }
        *skipped += 1;
        return true;
    }
    *skipped = 0;
    false
}
