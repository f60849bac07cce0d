//! The CTA simulation as agents. `cta_clock`, a timer agent, publishes the simulated time
//! on a clock topic, one tick per step (5 simulated minutes every 5 real seconds, faster
//! with the timer's `speedup`); `cta_trains` and `cta_turnstiles` (and `cta_weather`,
//! in its own file) follow that topic and emit what happens in each step. A clock on a
//! topic lets every producer see the same time, and lets a test drive one exact step.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use cta_stream::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::cta_data::CtaData;
use super::cta_lines::{Arrival, Color, Line};
use super::cta_turnstiles::{daily_rides, days, entries};

/// One step of simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimTick {
    /// 0 for the first step of this clock, then 1, 2, ...
    pub step: u64,
    /// Simulated time at the start of the step, ms since the Unix epoch (UTC).
    pub sim_time_ms: i64,
    /// Simulated length of a step, ms.
    pub step_ms: i64,
    /// Wall-clock time the tick was emitted, ms since the Unix epoch.
    pub emitted_ms: i64,
}

impl SimTick {
    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.sim_time_ms).unwrap_or_default()
    }

    /// Steps in a simulated hour (12 for 5-minute steps; at least 1).
    pub fn steps_per_hour(&self) -> u32 {
        (3_600_000 / self.step_ms.max(1)).max(1) as u32
    }

    /// Whether a simulated hour starts within this step.
    pub fn starts_an_hour(&self) -> bool {
        let hour = 3_600_000;
        self.sim_time_ms.rem_euclid(hour) == 0
            || self.sim_time_ms.div_euclid(hour) != (self.sim_time_ms + self.step_ms - 1).div_euclid(hour)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockParams {
    /// Simulated time per step, e.g. "5m".
    #[serde(default = "default_step")]
    step: String,
    /// "today" (00:00 UTC of the day the worker starts), a date "2026-11-27", or an RFC
    /// 3339 time "2026-11-27T08:00:00Z".
    #[serde(default = "default_start")]
    start: String,
}

fn default_step() -> String {
    "5m".into()
}
fn default_start() -> String {
    "today".into()
}

/// The simulated start time a `start` parameter names.
pub fn parse_start(start: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = start.trim();
    if s.eq_ignore_ascii_case("today") {
        return Ok(now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .map_err(|_| {
            format!("\"{start}\" is not \"today\", a date like 2026-11-27 or a time like 2026-11-27T08:00:00Z")
        })
}

/// The process's clock: the start is fixed once and steps keep counting across agent
/// restarts, so a restarted clock never sends simulated time backwards.
static CLOCK_START_MS: OnceLock<i64> = OnceLock::new();
static NEXT_STEP: AtomicU64 = AtomicU64::new(0);

/// Publishes a `SimTick` to its first sink at every tick of its timer.
pub async fn cta_clock(ctx: AgentContext, mut ticks: Stream<Tick>) -> AgentResult {
    let p: ClockParams = ctx.params()?;
    let bad = |key: &str, e: String| {
        anyhow!("bad setting `agents.{}.params.{key}` in {}: {e}", ctx.name(), ctx.app_settings().source)
    };
    let step = humantime::parse_duration(&p.step).map_err(|e| bad("step", e.to_string()))?;
    if step < Duration::from_millis(1) {
        return Err(bad("step", "must be at least 1ms".into()));
    }
    let start = parse_start(&p.start, Utc::now()).map_err(|e| bad("start", e))?;
    let start_ms = *CLOCK_START_MS.get_or_init(|| start.timestamp_millis());
    let out = ctx.sink(0)?;
    tracing::info!(start = %DateTime::from_timestamp_millis(start_ms).unwrap_or_default(), step = %p.step, "simulation clock");
    while let Some(t) = ticks.next().await? {
        let n = NEXT_STEP.fetch_add(1, Ordering::Relaxed);
        let tick = SimTick {
            step: n,
            sim_time_ms: start_ms + n as i64 * step.as_millis() as i64,
            step_ms: step.as_millis() as i64,
            emitted_ms: t.value.at_ms,
        };
        ctx.send(out, Some("clock"), &tick).await?;
    }
    Ok(())
}
register_agent!("cta_clock", cta_clock);

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

impl ProducerParams {
    pub fn load(ctx: &AgentContext) -> anyhow::Result<(Self, CtaData, Duration)> {
        let p: ProducerParams = ctx.params()?;
        let max_lag = humantime::parse_duration(&p.max_lag).map_err(|e| {
            anyhow!("bad setting `agents.{}.params.max_lag` in {}: {e}", ctx.name(), ctx.app_settings().source)
        })?;
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
            tracing::info!(agent = ctx.name(), step = tick.step, age_ms = age, "skipping stale clock ticks");
        }
        *skipped += 1;
        return true;
    }
    *skipped = 0;
    false
}

/// The Avro key of every CTA event: the wall-clock time it was produced, as the original.
#[derive(Debug, Serialize)]
pub struct TimestampKey {
    pub timestamp: i64,
}

impl TimestampKey {
    pub fn now() -> Self {
        Self {
            timestamp: Utc::now().timestamp_millis(),
        }
    }
}

/// The `arrival.value` record.
#[derive(Debug, Serialize)]
struct ArrivalValue<'a> {
    station_id: i32,
    train_id: &'a str,
    direction: &'static str,
    line: &'static str,
    train_status: &'static str,
    prev_station_id: Option<i32>,
    prev_direction: Option<&'static str>,
}

impl<'a> From<&'a Arrival> for ArrivalValue<'a> {
    fn from(a: &'a Arrival) -> Self {
        ArrivalValue {
            station_id: a.station_id,
            train_id: &a.train_id,
            direction: a.direction.as_str(),
            line: a.line.name(),
            // Trains never break down in the original either.
            train_status: "in_service",
            prev_station_id: a.prev_station_id,
            prev_direction: a.prev_direction.map(|d| d.as_str()),
        }
    }
}

fn build_lines(data: &CtaData) -> Vec<Line> {
    Color::ALL.iter().map(|&c| Line::build(c, data)).collect()
}

/// Moves the trains one station per tick; every arrival goes to the station's own topic.
/// The first tick also announces where the trains start, as the original does when it
/// builds its lines.
pub async fn cta_trains(ctx: AgentContext, mut clock: Stream<SimTick>) -> AgentResult {
    let (p, data, max_lag) = ProducerParams::load(&ctx)?;
    let mut lines = build_lines(&data);
    let arrivals = ctx.topic(&p.arrivals_prefix);
    let topic_of = |line: &Line, a: &Arrival| {
        format!("{arrivals}{}", line.stations[a.station_index].topic_suffix())
    };
    let topics: BTreeSet<String> = lines
        .iter()
        .flat_map(|l| l.stations.iter().map(|s| format!("{arrivals}{}", s.topic_suffix())))
        .collect();
    ctx.ensure_topics(&topics.into_iter().collect::<Vec<_>>()).await?;
    let mut started = false;
    let mut skipped = 0;
    while let Some(tick) = clock.next().await? {
        if stale(&ctx, &tick.value, max_lag, &mut skipped) {
            continue;
        }
        let key = TimestampKey::now();
        if !started {
            for line in &lines {
                for a in line.initial_arrivals() {
                    ctx.send(&topic_of(line, &a), Some(&key), &ArrivalValue::from(&a)).await?;
                }
            }
            started = true;
        }
        for line in &mut lines {
            for a in line.step() {
                ctx.send(&topic_of(line, &a), Some(&key), &ArrivalValue::from(&a)).await?;
            }
        }
    }
    Ok(())
}
register_agent!("cta_trains", cta_trains);

/// The `turnstile.value` record.
#[derive(Debug, Serialize)]
struct TurnstileValue<'a> {
    station_id: i32,
    station_name: &'a str,
    line: &'static str,
}

/// One turnstile per station of each line (a station on two lines has one on each, as
/// in the original); each entry in a step is one event on the first sink.
pub async fn cta_turnstiles(ctx: AgentContext, mut clock: Stream<SimTick>) -> AgentResult {
    let (p, data, max_lag) = ProducerParams::load(&ctx)?;
    let lines = build_lines(&data);
    let out = ctx.sink(0)?;
    ctx.ensure_topics(&[out.to_string()]).await?;
    let mut rng = p.rng();
    let mut skipped = 0;
    for line in &lines {
        for s in line.stations.iter().filter(|s| !data.ridership.contains_key(&s.station_id)) {
            tracing::warn!(station_id = s.station_id, station = %s.name, "no ridership data: this turnstile stays idle");
        }
    }
    while let Some(tick) = clock.next().await? {
        if stale(&ctx, &tick.value, max_lag, &mut skipped) {
            continue;
        }
        let t = tick.value;
        let day = days::weekday_of(t.sim_time_ms.div_euclid(86_400_000));
        let hour = (t.sim_time_ms.rem_euclid(86_400_000) / 3_600_000) as usize;
        let ratio = data.hourly[hour];
        let key = TimestampKey::now();
        for line in &lines {
            for s in &line.stations {
                let Some(r) = data.ridership.get(&s.station_id) else { continue };
                let n = entries(daily_rides(r, day), ratio, t.steps_per_hour(), &mut rng);
                let value = TurnstileValue {
                    station_id: s.station_id,
                    station_name: &s.name,
                    line: line.color.name(),
                };
                for _ in 0..n {
                    ctx.send(out, Some(&key), &value).await?;
                }
            }
        }
    }
    Ok(())
}
register_agent!("cta_turnstiles", cta_turnstiles);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_is_today_at_midnight_utc_unless_given() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T15:31:07Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_start("today", now).unwrap().to_rfc3339(), "2026-11-27T00:00:00+00:00");
        assert_eq!(parse_start("2020-01-06", now).unwrap().to_rfc3339(), "2020-01-06T00:00:00+00:00");
        assert_eq!(
            parse_start("2020-01-06T08:00:00-06:00", now).unwrap().to_rfc3339(),
            "2020-01-06T14:00:00+00:00"
        );
        assert!(parse_start("yesterday", now).unwrap_err().contains("yesterday"));
    }

    #[test]
    fn ticks_know_their_hour() {
        let tick = |min: i64, step_min: i64| SimTick {
            step: 0,
            sim_time_ms: min * 60_000,
            step_ms: step_min * 60_000,
            emitted_ms: 0,
        };
        assert!(tick(0, 5).starts_an_hour());
        assert!(!tick(5, 5).starts_an_hour());
        assert!(tick(60, 5).starts_an_hour());
        assert!(tick(55, 7).starts_an_hour(), "55..62 crosses the hour");
        assert_eq!(tick(0, 5).steps_per_hour(), 12);
        assert_eq!(tick(0, 120).steps_per_hour(), 1);
    }
}
