//! Step 6 of the CTA system: what the status page shows, kept in tables every worker
//! holds whole (global tables, see `tables/cta.rs`). Stations and turnstile counts are
//! followed straight from their topics; the weather from its Avro topic; train positions
//! by this agent, from the arrival topics.

use cta_stream::prelude::*;

use super::cta::records::{ArrivalValue, EventKey, TrainPosition};
use crate::tables::cta::Trains;

// How an arrival moves a train, on the table's record (`cta/records.rs`).
impl TrainPosition {
    pub fn of(a: &ArrivalValue, at_ms: i64) -> Self {
        TrainPosition {
            train_id: a.train_id.clone(),
            line: a.line.clone(),
            station_id: a.station_id,
            direction: a.direction.clone(),
            prev_station_id: a.prev_station_id,
            at_ms,
        }
    }

    /// Whether `next` is a later position than `self`. Arrivals come from one topic per
    /// station, so they can be read out of order: the later event time wins; at equal
    /// times (a step's arrivals share their key) the arrival that leaves `self`'s slot
    /// is the later one.
    pub fn is_superseded_by(&self, next: &ArrivalValue, next_ms: i64) -> bool {
        next_ms > self.at_ms
            || (next_ms == self.at_ms
                && next.prev_station_id == Some(self.station_id)
                && next.prev_direction.as_deref() == Some(self.direction.as_str()))
    }
}

/// Keeps each train's latest arrival in the table `trains` (by train id).
pub async fn cta_train_positions(
    ctx: AgentContext,
    mut arrivals: Stream<ArrivalValue, EventKey>,
) -> AgentResult {
    let trains = ctx.table::<Trains>()?;
    while let Some(event) = arrivals.next().await? {
        let at_ms = event
            .key
            .map(|k| k.timestamp)
            .or(event.timestamp)
            .unwrap_or(0);
        let a = &event.value;
        let newer = match trains.get(&a.train_id).await? {
            Some(current) => current.is_superseded_by(a, at_ms),
            None => true,
        };
        if newer {
            trains
                .insert(&a.train_id, &TrainPosition::of(a, at_ms))
                .await?;
        } else {
            ctx.filtered();
        }
    }
    Ok(())
}
register_agent!("cta_train_positions", cta_train_positions);

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(station: i32, dir: &str, prev: Option<(i32, &str)>) -> ArrivalValue {
        ArrivalValue {
            station_id: station,
            train_id: "BL000".into(),
            direction: dir.into(),
            line: "blue".into(),
            train_status: "in_service".into(),
            prev_station_id: prev.map(|p| p.0),
            prev_direction: prev.map(|p| p.1.to_string()),
        }
    }

    #[test]
    fn the_latest_arrival_wins_whatever_the_order_read() {
        let start = TrainPosition::of(&arrival(40890, "b", None), 1_000);
        let step1 = arrival(40820, "b", Some((40890, "b")));
        // Same key time as the start (one tick announces the start and the first move).
        assert!(start.is_superseded_by(&step1, 1_000));
        let at1 = TrainPosition::of(&step1, 1_000);
        assert!(
            !at1.is_superseded_by(&arrival(40890, "b", None), 1_000),
            "the start read late"
        );
        let step2 = arrival(40230, "b", Some((40820, "b")));
        assert!(at1.is_superseded_by(&step2, 6_000));
        let at2 = TrainPosition::of(&step2, 6_000);
        assert!(
            !at2.is_superseded_by(&step1, 1_000),
            "an older arrival read late"
        );
    }

    #[tokio::test]
    async fn a_train_is_where_its_latest_arrival_puts_it_whatever_the_topic_order() {
        use crate::agents::cta::driver::{self, key_at};
        let mut t = driver::start(&["cta_train_positions"]).await;
        // One tick announces the start (b) and the first move (a): equal key times. The
        // driver reads topic a before topic b, so the start is read late.
        let start = arrival(40890, "b", None);
        let moved = arrival(40820, "b", Some((40890, "b")));
        let topic = |s: &str| format!("org.chicago.cta.station.arrivals.{s}");
        t.send(&topic("b"), Some(&key_at(1_000)), &start).await.unwrap();
        t.send(&topic("a"), Some(&key_at(1_000)), &moved).await.unwrap();
        t.settle().await.unwrap();
        let trains = t.table::<Trains>().await.unwrap();
        assert_eq!(trains.len(), 1);
        assert_eq!((trains[0].1.station_id, trains[0].1.at_ms), (40820, 1_000));
        assert_eq!(t.status("cta_train_positions").unwrap().filtered, 1);
        // The next step, and an old arrival of another train read after a newer one.
        let mut other_new = arrival(40230, "a", None);
        other_new.train_id = "BL001".into();
        let mut other_old = arrival(40820, "a", None);
        other_old.train_id = "BL001".into();
        t.send(&topic("c"), Some(&key_at(6_000)), &arrival(40230, "b", Some((40820, "b"))))
            .await
            .unwrap();
        t.send(&topic("d"), Some(&key_at(9_000)), &other_new).await.unwrap();
        t.send(&topic("e"), Some(&key_at(2_000)), &other_old).await.unwrap();
        t.settle().await.unwrap();
        let at: Vec<(String, i32)> = t
            .table::<Trains>()
            .await
            .unwrap()
            .into_iter()
            .map(|(id, p)| (id, p.station_id))
            .collect();
        assert_eq!(at, [("BL000".into(), 40230), ("BL001".into(), 40230)]);
    }
}
