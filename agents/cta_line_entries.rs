//! Turnstile entries per line: every turnstile event re-keyed by its line (`group_by`
//! through the repartition topic `<app-id>-cta_line_entries-line-repartition`) and
//! counted in the table `line_entries`, whose global mirror `line_entries_all` the pages
//! read. The turnstile topic is keyed by station; without the re-key a line's count
//! would be split over the partitions its stations fall in.

use cta_stream::prelude::*;

use super::cta::records::TurnstileValue;
use crate::tables::cta::LineEntries;

pub async fn cta_line_entries(ctx: AgentContext, events: Stream<TurnstileValue>) -> AgentResult {
    let counts = ctx.table::<LineEntries>()?;
    let mut by_line = events.group_by(&ctx, "line", |e| e.value.line.clone())?;
    while let Some(event) = by_line.next().await? {
        let line = event.key.unwrap_or_else(|| event.value.line.clone());
        let n = counts.get(&line).await?.unwrap_or(0) + 1;
        counts.insert(&line, &n).await?;
    }
    Ok(())
}
register_agent!("cta_line_entries", cta_line_entries, group_by = ["line"]);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::agents::cta::driver::{self, key_at};

    const TOPIC: &str = "org.chicago.cta.turnstile.v1";

    #[tokio::test]
    async fn entries_are_counted_per_line_across_the_stations_partitions_and_a_crash() {
        let mut t = driver::start(&["cta_line_entries"]).await;
        let stations = [(40010, "blue"), (40900, "red"), (41400, "red"), (40380, "green")];
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for round in 0..3 {
            for (i, (station_id, line)) in stations.iter().enumerate() {
                let v = TurnstileValue {
                    station_id: *station_id,
                    station_name: format!("station {station_id}"),
                    line: line.to_string(),
                };
                for _ in 0..=i {
                    t.send(TOPIC, Some(&key_at(1_000)), &v).await.unwrap();
                    *want.entry(line.to_string()).or_default() += 1;
                }
            }
            t.settle().await.unwrap();
            if round == 1 {
                t.hold_deliveries();
            }
        }
        t.crash().await.unwrap();
        let got: BTreeMap<String, u64> = t.table::<LineEntries>().await.unwrap().into_iter().collect();
        // settings.toml runs the app exactly-once: the counts are exact.
        assert_eq!(got, want);
    }
}
