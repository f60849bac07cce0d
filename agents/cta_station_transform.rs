//! Step 4 of the CTA system (Faust's job in the original): the station rows that Kafka
//! Connect pulls from PostgreSQL become the `stations` table — one `TransformedStation` per
//! `station_id` — whose changelog `org.chicago.cta.stations.table.v1` is what the status
//! pages read.

use cta_stream::prelude::*;

use super::cta::records::{Station, TransformedStation};
use crate::tables::cta::{LineStations, Stations};

// The transform, on the row's record (`cta/records.rs`).
impl Station {
    /// The simulated line of the row (checked red, blue, green as the original), `None`
    /// for the Brown, Purple, ... lines that are not simulated.
    pub fn line(&self) -> Option<&'static str> {
        if self.red {
            Some("red")
        } else if self.blue {
            Some("blue")
        } else if self.green {
            Some("green")
        } else {
            None
        }
    }

    pub fn transform(&self) -> Option<TransformedStation> {
        Some(TransformedStation {
            station_id: self.station_id,
            station_name: self.station_name.clone(),
            order: self.order,
            line: self.line()?.to_string(),
        })
    }
}

pub async fn cta_station_transform(ctx: AgentContext, mut rows: Stream<Station>) -> AgentResult {
    let stations = ctx.table::<Stations>()?;
    // By line too, when the settings give the table (the status page's view).
    let by_line = ctx
        .table::<LineStations>()
        .ok();
    while let Some(row) = rows.next().await? {
        match row.value.transform() {
            Some(t) => {
                stations.insert(&t.station_id, &t).await?;
                if let Some(by_line) = &by_line {
                    by_line
                        .insert(&format!("{}:{}", t.line, t.station_id), &t)
                        .await?;
                }
            }
            None => ctx.filtered(),
        }
    }
    Ok(())
}
register_agent!("cta_station_transform", cta_station_transform);

#[cfg(test)]
mod tests {
    use super::*;

    fn row(json: &str) -> Station {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rows_become_stations_of_their_line_or_are_left_out() {
        let austin = row(
            r#"{"stop_id":30001,"direction_id":"E","stop_name":"Austin (O'Hare-bound)","station_name":"Austin","station_descriptive_name":"Austin (Blue Line)","station_id":40010,"order":29,"red":false,"blue":true,"green":false}"#,
        );
        assert_eq!(
            austin.transform(),
            Some(TransformedStation {
                station_id: 40010,
                station_name: "Austin".into(),
                order: Some(29),
                line: "blue".into()
            })
        );
        let brown = row(
            r#"{"stop_id":30162,"station_name":"Kimball","station_id":41290,"order":null,"red":false,"blue":false,"green":false}"#,
        );
        assert_eq!(brown.transform(), None);
        assert!(serde_json::from_str::<Station>(r#"{"stop_id":1}"#).is_err());
        assert!(serde_json::from_str::<Station>(r#"{"station_id":"x"}"#).is_err());
    }

    #[tokio::test]
    async fn the_agent_keeps_stations_of_simulated_lines_by_id_and_by_line() {
        use crate::tables::cta::LineStationsAll;
        let mut t = crate::agents::cta::driver::start(&["cta_station_transform"]).await;
        let topic = "org.chicago.cta.stations";
        for json in [
            r#"{"stop_id":30001,"station_name":"Austin","station_id":40010,"order":29,"red":false,"blue":true,"green":false}"#,
            r#"{"stop_id":30162,"station_name":"Kimball","station_id":41290,"order":null,"red":false,"blue":false,"green":false}"#,
            r#"{"stop_id":30173,"station_name":"Howard","station_id":40900,"order":1,"red":true,"blue":false,"green":false}"#,
            r#"{"stop_id":1,"station_id":"not a number"}"#,
        ] {
            t.send_raw(topic, None, Some(json.as_bytes())).unwrap();
        }
        t.settle().await.unwrap();
        let by_id: Vec<(i32, String)> = t
            .table::<Stations>()
            .await
            .unwrap()
            .into_iter()
            .map(|(id, s)| (id, s.line))
            .collect();
        assert_eq!(by_id, [(40010, "blue".into()), (40900, "red".into())]);
        let by_line: Vec<String> = t
            .table::<LineStationsAll>()
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(by_line, ["blue:40010", "red:40900"], "the global table follows");
        let s = t.status("cta_station_transform").unwrap();
        assert_eq!((s.events_in, s.filtered, s.dead_lettered), (4, 1, 1));
        assert_eq!(t.dead_letters("cta_station_transform").len(), 1);
        // The stations changelog is the original's Faust output topic.
        assert_eq!(t.records("org.chicago.cta.stations.table.v1").len(), 2);
    }
}
