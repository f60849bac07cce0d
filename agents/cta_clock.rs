//! The simulation clock. `cta_clock`, a timer agent, publishes the simulated time on a
//! clock topic, one tick per step (5 simulated minutes every 5 real seconds, faster with
//! the timer's `speedup`); `cta_trains`, `cta_turnstiles` and `cta_weather` follow that
//! topic and emit what happens in each step. A clock on a topic lets every producer see
//! the same time, and lets a test drive one exact step.
//!
//! The clock's timer fires `on_leader`: however many workers run the app, one ticks. Its
//! step is the timer's `seq`, which the next leader continues, so a take-over neither
//! repeats a step nor sends simulated time backwards.

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

/// "today" is the day the process started, whenever the agent restarts; steps are the
/// timer's app-wide firing numbers (`Tick::seq`), which keep counting across agent
/// restarts and leaders: simulated time never goes backwards. (A take-over by a worker
/// started on a later day jumps forward by the days between.)
static TODAY_MS: OnceLock<i64> = OnceLock::new();

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
    let start_ms = if p.start.trim().eq_ignore_ascii_case("today") {
        *TODAY_MS.get_or_init(|| start.timestamp_millis())
    } else {
        start.timestamp_millis()
    };
    let out = ctx.sink(0)?;
    tracing::info!(start = %DateTime::from_timestamp_millis(start_ms).unwrap_or_default(), step = %p.step, "simulation clock");
    while let Some(t) = ticks.next().await? {
        let n = t.value.seq;
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

    #[tokio::test]
    async fn the_clock_ticks_five_simulated_minutes_per_timer_firing() {
        use crate::agents::cta::driver::{self, CLOCK};
        let mut t = driver::start(&["cta_clock"]).await;
        t.advance(Duration::from_millis(15_010)).await.unwrap();
        let ticks: Vec<SimTick> = t.values(CLOCK).await.unwrap();
        assert_eq!(ticks.iter().map(|t| t.step).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(ticks[0].sim_time_ms % 86_400_000, 0, "starts at midnight UTC");
        assert!(ticks.windows(2).all(|w| w[1].sim_time_ms - w[0].sim_time_ms == 300_000));
        assert!(ticks.iter().all(|t| t.step_ms == 300_000));
    }
}
