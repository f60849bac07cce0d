//! The turnstiles: `cta_turnstiles` follows the simulation clock and, in each step, sends
//! one Avro `turnstile.value` per rider entering a station (the formula in
//! `cta/model/turnstiles.rs`).

use cta_stream::prelude::*;

use super::cta::model::lines::build_lines;
use super::cta::model::turnstiles::{daily_rides, days, entries};
use super::cta::producer::{stale, ProducerParams};
use super::cta::records::{sim_time_headers, EventKey, SimTick, TurnstileValue};

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
                    ctx.send_with(out, Some(&key), &value, sim_time_headers(t.sim_time_ms))
                        .await?;
                }
            }
        }
    }
    Ok(())
}
register_agent!("cta_turnstiles", cta_turnstiles);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::agents::cta::data::project_data;
    use crate::agents::cta::driver;

    /// 2025-12-01, a Monday, 00:00 UTC.
    const MONDAY: i64 = 1_764_547_200_000;

    #[tokio::test]
    async fn riders_enter_each_station_as_its_ridership_and_the_hour_say() {
        let mut t = driver::start(&["cta_turnstiles"]).await;
        // 03:00 then 08:00 (steps of five minutes from midnight).
        driver::run_clock(&mut t, MONDAY, 36..37).await;
        let at_three = t.records("org.chicago.cta.turnstile.v1").len();
        driver::run_clock(&mut t, MONDAY, 96..97).await;
        let events: Vec<TurnstileValue> = t.values("org.chicago.cta.turnstile.v1").await.unwrap();
        let at_eight = events.len() - at_three;
        assert!(at_eight > 5 * at_three.max(1), "rush hour: {at_eight} vs {at_three}");
        let data = project_data();
        let lines = build_lines(&data);
        let mut per_station: BTreeMap<i32, u32> = BTreeMap::new();
        for e in &events[at_three..] {
            assert!(data.ridership.contains_key(&e.station_id), "{e:?}");
            assert!(["blue", "red", "green"].contains(&e.line.as_str()));
            *per_station.entry(e.station_id).or_default() += 1;
        }
        // The expected total of the step: each line's turnstile at each station with
        // ridership, daily rides × the hour's share / steps per hour (12).
        let day = days::weekday_of(MONDAY / 86_400_000);
        let expected: f64 = lines
            .iter()
            .flat_map(|l| l.stations.iter())
            .filter_map(|s| data.ridership.get(&s.station_id))
            .map(|r| f64::from(daily_rides(r, day)) * data.hourly[8] / 12.0)
            .sum();
        let got = at_eight as f64;
        assert!(
            (0.7 * expected..=1.3 * expected).contains(&got),
            "{got} entries, about {expected:.0} expected"
        );
    }
}
