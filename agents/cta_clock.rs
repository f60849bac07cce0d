//! The simulation clock. `cta_clock`, a timer agent, publishes the simulated time on a
//! clock topic, one tick per step (5 simulated minutes every 5 real seconds, faster with
//! the timer's `speedup`); `cta_trains`, `cta_turnstiles` and `cta_weather` follow that
//! topic and emit what happens in each step. A clock on a topic lets every producer see
//! the same time, and lets a test drive one exact step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use cta_stream::prelude::*;

use super::cta::records::SimTick;

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
        return Ok(now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc());
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
        anyhow!(
            "bad setting `agents.{}.params.{key}` in {}: {e}",
            ctx.name(),
            ctx.app_settings().source
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_is_today_at_midnight_utc_unless_given() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T15:31:07Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_start("today", now).unwrap().to_rfc3339(),
            "2026-11-27T00:00:00+00:00"
        );
        assert_eq!(
            parse_start("2020-01-06", now).unwrap().to_rfc3339(),
            "2020-01-06T00:00:00+00:00"
        );
        assert_eq!(
            parse_start("2020-01-06T08:00:00-06:00", now)
                .unwrap()
                .to_rfc3339(),
            "2020-01-06T14:00:00+00:00"
        );
        assert!(parse_start("yesterday", now)
            .unwrap_err()
            .contains("yesterday"));
    }
}
