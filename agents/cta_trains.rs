//! The trains: `cta_trains` follows the simulation clock and moves every train one
//! station per tick (the model in `cta/model/lines.rs`); each arrival goes to the
//! station's own topic as an Avro `arrival.value`.

use std::collections::BTreeSet;

use cta_stream::prelude::*;

use super::cta::model::lines::{build_lines, Arrival, Line};
use super::cta::producer::{stale, ProducerParams};
use super::cta::records::{sim_time_headers, ArrivalValue, EventKey, SimTick};

/// The `arrival.value` record of an arrival.
fn arrival_value(a: &Arrival) -> ArrivalValue {
    ArrivalValue {
        station_id: a.station_id,
        train_id: a.train_id.clone(),
        direction: a.direction.as_str().into(),
        line: a.line.name().into(),
        // Trains never break down in the original either.
        train_status: "in_service".into(),
        prev_station_id: a.prev_station_id,
        prev_direction: a.prev_direction.map(|d| d.as_str().into()),
    }
}

/// Moves the trains one station per tick; every arrival goes to the station's own topic.
/// The first tick also announces where the trains start, as the original does when it
/// builds its lines.
pub async fn cta_trains(ctx: AgentContext, mut clock: Stream<SimTick>) -> AgentResult {
    let (p, data, max_lag) = ProducerParams::load(&ctx)?;
    let mut lines = build_lines(&data);
    let arrivals = ctx.topic(&p.arrivals_prefix);
    let topic_of = |line: &Line, a: &Arrival| {
        format!(
            "{arrivals}{}",
            line.stations[a.station_index].topic_suffix()
        )
    };
    let topics: BTreeSet<String> = lines
        .iter()
        .flat_map(|l| {
            l.stations
                .iter()
                .map(|s| format!("{arrivals}{}", s.topic_suffix()))
        })
        .collect();
    ctx.ensure_topics(&topics.into_iter().collect::<Vec<_>>())
        .await?;
    let mut started = false;
    let mut skipped = 0;
    while let Some(tick) = clock.next().await? {
        if stale(&ctx, &tick.value, max_lag, &mut skipped) {
            continue;
        }
        let key = EventKey::now();
        let at = || sim_time_headers(tick.value.sim_time_ms);
        if !started {
            for line in &lines {
                for a in line.initial_arrivals() {
                    ctx.send_with(&topic_of(line, &a), Some(&key), &arrival_value(&a), at())
                        .await?;
                }
            }
            started = true;
        }
        for line in &mut lines {
            for a in line.step() {
                ctx.send_with(&topic_of(line, &a), Some(&key), &arrival_value(&a), at())
                    .await?;
            }
        }
    }
    Ok(())
}
register_agent!("cta_trains", cta_trains);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::cta::data::project_data;

    #[test]
    fn arrivals_fit_the_arrival_schema() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/arrival_value.json");
        let schema =
            apache_avro::Schema::parse_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut red = build_lines(&project_data()).remove(1);
        let mut arrivals = red.initial_arrivals();
        arrivals.extend(red.step());
        for a in arrivals {
            let v = arrival_value(&a);
            assert_eq!(
                (v.station_id, v.train_id.as_str(), v.line.as_str()),
                (a.station_id, a.train_id.as_str(), "red")
            );
            assert_eq!(v.direction, a.direction.as_str());
            assert_eq!(v.prev_station_id, a.prev_station_id);
            assert_eq!(
                v.prev_direction.as_deref(),
                a.prev_direction.map(|d| d.as_str())
            );
            let bytes = cta_stream::codec::encode_avro_datum(&schema, &v).unwrap();
            let back: ArrivalValue =
                cta_stream::codec::decode_avro_datum(&schema, &mut bytes.as_slice()).unwrap();
            assert_eq!(back, v);
        }
    }

    #[tokio::test]
    async fn every_train_moves_one_station_per_tick_on_its_stations_topics() {
        use std::collections::BTreeMap;

        use crate::agents::cta::driver;
        let mut t = driver::start(&["cta_trains"]).await;
        driver::run_clock(&mut t, 1_764_547_200_000, 0..3).await;
        let mut by_train: BTreeMap<String, Vec<ArrivalValue>> = BTreeMap::new();
        let mut topics = 0;
        for topic in t.topics() {
            let Some(suffix) = topic.strip_prefix("org.chicago.cta.station.arrivals.") else {
                continue;
            };
            topics += 1;
            for (key, a) in t.keyed::<EventKey, ArrivalValue>(&topic).await.unwrap() {
                assert!(key.is_some(), "arrivals are keyed");
                assert!(!suffix.is_empty());
                by_train.entry(a.train_id.clone()).or_default().push(a);
            }
        }
        let lines = build_lines(&project_data());
        let stations: usize = lines.iter().map(|l| l.stations.len()).sum();
        assert!(topics > 0 && topics <= stations, "one topic per station");
        assert_eq!(by_train.len(), lines.len() * 10, "ten trains a line");
        for (train, arrivals) in &by_train {
            // Where it starts, then one arrival per tick (three ticks).
            assert_eq!(arrivals.len(), 4, "{train}: {arrivals:?}");
            assert!(arrivals.iter().all(|a| a.train_status == "in_service"));
            let starts = arrivals.iter().filter(|a| a.prev_station_id.is_none()).count();
            assert_eq!(starts, 1, "{train}");
            for a in arrivals.iter().filter(|a| a.prev_station_id.is_some()) {
                let prev = a.prev_station_id.unwrap();
                assert!(
                    arrivals.iter().any(|b| b.station_id == prev),
                    "{train} arrived at {} from {prev}, where it never was",
                    a.station_id
                );
            }
        }
    }
}
