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
}
