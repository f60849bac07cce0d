//! Step 5 of the CTA system (KSQL's job in the original): every turnstile event counted per
//! station in the table `turnstile_counts`, each new count also written to
//! `TURNSTILE_SUMMARY` as KSQL wrote it — key the station id as text, value
//! `{"STATION_ID": int, "COUNT": long}` — so that consumers written for the original read it.
//! Run under exactly-once, a count never includes an event twice, crashes included.

use cta_stream::prelude::*;

use super::cta::records::{StationCount, TurnstileValue};
use crate::tables::cta::TurnstileCounts;

pub async fn cta_turnstile_summary(
    ctx: AgentContext,
    mut events: Stream<TurnstileValue>,
) -> AgentResult {
    let counts = ctx.table::<TurnstileCounts>()?;
    let out = ctx.sink(0)?;
    while let Some(event) = events.next().await? {
        let id = event.value.station_id;
        let count = counts.get(&id).await?.unwrap_or(0) + 1;
        counts.insert(&id, &count).await?;
        let summary = StationCount {
            STATION_ID: id,
            COUNT: count,
        };
        ctx.send(out, Some(id.to_string().as_str()), &summary)
            .await?;
    }
    Ok(())
}
register_agent!("cta_turnstile_summary", cta_turnstile_summary);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::agents::cta::driver::{self, key_at};
    use crate::tables::cta::TurnstileSummary;

    const TOPIC: &str = "org.chicago.cta.turnstile.v1";

    async fn enter(t: &cta_stream::testing::TestDriver, station_id: i32, n: usize) {
        let v = TurnstileValue {
            station_id,
            station_name: format!("station {station_id}"),
            line: "blue".into(),
        };
        for _ in 0..n {
            t.send(TOPIC, Some(&key_at(1_000)), &v).await.unwrap();
        }
    }

    #[tokio::test]
    async fn entries_are_counted_per_station_exactly_once_across_a_crash() {
        let mut t = driver::start(&["cta_turnstile_summary"]).await;
        enter(&t, 40010, 3).await;
        enter(&t, 40900, 2).await;
        t.settle().await.unwrap();
        // A crash after the next entries were counted and written, before their acks.
        t.hold_deliveries();
        enter(&t, 40010, 4).await;
        t.settle().await.unwrap();
        t.crash().await.unwrap();
        let counts: BTreeMap<i32, i64> = t.table::<TurnstileCounts>().await.unwrap().into_iter().collect();
        assert_eq!(counts, BTreeMap::from([(40010, 7), (40900, 2)]));
        // TURNSTILE_SUMMARY as KSQL wrote it: the station id as text, each new count.
        let summary = t.keyed::<String, StationCount>("TURNSTILE_SUMMARY").await.unwrap();
        assert_eq!(summary.len(), 9, "one record per entry, none twice");
        let last: BTreeMap<String, i64> = summary
            .into_iter()
            .map(|(k, v)| (k.unwrap(), v.COUNT))
            .collect();
        assert_eq!(last, BTreeMap::from([("40010".into(), 7), ("40900".into(), 2)]));
        let followed: Vec<(String, i64)> = t
            .table::<TurnstileSummary>()
            .await
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.COUNT))
            .collect();
        assert_eq!(followed, [("40010".into(), 7), ("40900".into(), 2)]);
    }
}
