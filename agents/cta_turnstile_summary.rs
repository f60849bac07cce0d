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
