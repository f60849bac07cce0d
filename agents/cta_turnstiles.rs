//! The turnstiles: `cta_turnstiles` follows the simulation clock and, in each step, sends
//! one Avro `turnstile.value` per rider entering a station (the formula in
//! `cta/model/turnstiles.rs`).

use cta_stream::prelude::*;

use super::cta::model::lines::build_lines;
use super::cta::model::turnstiles::{daily_rides, days, entries};
use super::cta::producer::{stale, ProducerParams};
use super::cta::records::{EventKey, SimTick, TurnstileValue};

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
        for s in line
            .stations
            .iter()
            .filter(|s| !data.ridership.contains_key(&s.station_id))
        {
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
        let key = EventKey::now();
        for line in &lines {
            for s in &line.stations {
                let Some(r) = data.ridership.get(&s.station_id) else {
                    continue;
                };
                let n = entries(daily_rides(r, day), ratio, t.steps_per_hour(), &mut rng);
                if n == 0 {
                    continue;
                }
                let value = TurnstileValue {
                    station_id: s.station_id,
                    station_name: s.name.clone(),
                    line: line.color.name().into(),
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
