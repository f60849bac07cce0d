//! Headways: the simulated time between two trains arriving at a station on one line in
//! one direction. Every arrival is re-keyed by `<station_id>:<line>:<direction>`
//! (`group_by`); the agent keeps the last arrival per key in the table `last_arrivals`
//! and folds each headway into the tumbling windowed table `headways` (1-hour windows
//! of simulated time): how many, their sum, shortest and longest. The station page reads
//! the mirrors.

use cta_stream::prelude::*;

use super::cta::records::{sim_time_of, ArrivalValue, EventKey};
use crate::tables::cta::{Headways, LastArrivals};

/// The key of a station's platform on a line: "40380:blue:a".
pub fn platform_key(station_id: i32, line: &str, direction: &str) -> String {
    format!("{station_id}:{line}:{direction}")
}

pub async fn cta_headways(ctx: AgentContext, arrivals: Stream<ArrivalValue, EventKey>) -> AgentResult {
    let last = ctx.table::<LastArrivals>()?;
    let headways = ctx.windowed_table::<Headways>()?;
    let mut by_platform = arrivals.group_by(&ctx, "platform", |e| {
        platform_key(e.value.station_id, &e.value.line, &e.value.direction)
    })?;
    while let Some(event) = by_platform.next().await? {
        let Some(key) = event.key else { continue };
        let Some(at) = sim_time_of(&event.headers) else {
            ctx.filtered();
            continue;
        };
        let previous = last.get(&key).await?;
        match previous {
            // A replayed or reordered arrival: not a new headway.
            Some(p) if at <= p => continue,
            Some(p) => {
                let gap = at - p;
                headways
                    .at(at)
                    .update(&key, |h| h.unwrap_or_default().with(gap))
                    .await?;
            }
            None => {}
        }
        last.insert(&key, &at).await?;
    }
    Ok(())
}
register_agent!("cta_headways", cta_headways, group_by = ["platform"]);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::cta::driver::{self, key_at};
    use crate::agents::cta::records::{sim_time_headers, Headway};

    const TOPIC: &str = "org.chicago.cta.station.arrivals.clark_and_lake";
    const HOUR: i64 = 3_600_000;
    const MIN: i64 = 60_000;
    const DAY: i64 = 1_796_428_800_000;

    #[tokio::test]
    async fn headways_per_platform_and_hour() {
        let mut t = driver::start(&["cta_headways"]).await;
        let arrival = |train: &str, direction: &str| ArrivalValue {
            station_id: 40380,
            train_id: train.into(),
            direction: direction.into(),
            line: "blue".into(),
            train_status: "on_time".into(),
            prev_station_id: None,
            prev_direction: None,
        };
        // Direction a: at 8:00, 8:10, 8:25 and 9:05; direction b: at 8:05 only.
        let seen = [
            ("BL1", "a", DAY + 8 * HOUR),
            ("BL5", "b", DAY + 8 * HOUR + 5 * MIN),
            ("BL2", "a", DAY + 8 * HOUR + 10 * MIN),
            ("BL3", "a", DAY + 8 * HOUR + 25 * MIN),
            ("BL3", "a", DAY + 8 * HOUR + 25 * MIN), // the same arrival again
            ("BL4", "a", DAY + 9 * HOUR + 5 * MIN),
        ];
        for (train, direction, at) in seen {
            let key = key_at(1_000);
            t.send_with_headers(TOPIC, Some(&key), &arrival(train, direction), sim_time_headers(at))
                .await
                .unwrap();
        }
        t.settle().await.unwrap();
        let w = t.windowed::<Headways>().unwrap();
        let a: Vec<(i64, Headway)> = w
            .windows(&"40380:blue:a".to_string())
            .await
            .unwrap()
            .into_iter()
            .map(|w| (w.start, w.value))
            .collect();
        assert_eq!(
            a,
            vec![
                (DAY + 8 * HOUR, Headway { count: 2, total_ms: 25 * MIN, min_ms: 10 * MIN, max_ms: 15 * MIN }),
                (DAY + 9 * HOUR, Headway { count: 1, total_ms: 40 * MIN, min_ms: 40 * MIN, max_ms: 40 * MIN }),
            ]
        );
        assert!(w.windows(&"40380:blue:b".to_string()).await.unwrap().is_empty(), "one arrival, no headway");
    }
}
