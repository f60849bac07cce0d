//! Turnstile entries per station and simulated hour: every turnstile event re-keyed by
//! its station (`group_by`) and counted in the tumbling windowed table
//! `station_hourly_entries` (1-hour windows of simulated time, from the event's
//! `cta.sim_time_ms` header). Its global mirror `station_hourly_entries_all` gives the
//! station page its chart of the last simulated day.

use cta_stream::prelude::*;

use super::cta::records::{sim_time_of, TurnstileValue};
use crate::tables::cta::StationHourlyEntries;

pub async fn cta_station_entries(
    ctx: AgentContext,
    events: Stream<TurnstileValue>,
) -> AgentResult {
    let hourly = ctx.windowed_table::<StationHourlyEntries>()?;
    let mut by_station = events.group_by(&ctx, "station", |e| e.value.station_id)?;
    while let Some(event) = by_station.next().await? {
        let Some(station) = event.key else { continue };
        // The simulated time, not the record's (the wall clock's) nor the key's.
        let Some(at) = sim_time_of(&event.headers) else {
            ctx.filtered();
            continue;
        };
        hourly.at(at).update(&station, |n| n.unwrap_or(0) + 1).await?;
    }
    Ok(())
}
register_agent!("cta_station_entries", cta_station_entries, group_by = ["station"]);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::cta::driver::{self, key_at};
    use crate::agents::cta::records::{sim_time_headers, EventKey};

    const TOPIC: &str = "org.chicago.cta.turnstile.v1";
    const DAY: i64 = 1_796_428_800_000; // 2026-12-05 00:00 UTC
    const HOUR: i64 = 3_600_000;

    #[tokio::test]
    async fn entries_are_counted_per_station_and_simulated_hour() {
        let mut t = driver::start(&["cta_station_entries"]).await;
        let v = |station_id: i32| TurnstileValue {
            station_id,
            station_name: format!("station {station_id}"),
            line: "blue".into(),
        };
        // (station, simulated time): three in hour 8, one in hour 9 at 40010; one at 40900.
        let events = [
            (40010, DAY + 8 * HOUR + 1),
            (40010, DAY + 8 * HOUR + 30 * 60_000),
            (40900, DAY + 8 * HOUR + 40 * 60_000),
            (40010, DAY + 9 * HOUR),
            (40010, DAY + 8 * HOUR + 59 * 60_000), // out of order, within the grace
        ];
        for (station, at) in events {
            let key: EventKey = key_at(1_000);
            t.send_with_headers(TOPIC, Some(&key), &v(station), sim_time_headers(at))
                .await
                .unwrap();
        }
        t.settle().await.unwrap();
        let w = t.windowed::<StationHourlyEntries>().unwrap();
        let got: Vec<(i64, u64)> = w
            .windows(&40010)
            .await
            .unwrap()
            .into_iter()
            .map(|w| (w.start, w.value))
            .collect();
        assert_eq!(got, vec![(DAY + 8 * HOUR, 3), (DAY + 9 * HOUR, 1)]);
        let other: Vec<u64> = w.windows(&40900).await.unwrap().into_iter().map(|w| w.value).collect();
        assert_eq!(other, vec![1]);
    }
}
