//! The records of the CTA topics and tables, each defined once: the producing agent, the
//! consuming agents, the tables and the status page use these types. The Avro records
//! mirror their schemas in `schemas/` field for field (the tests below check it); the
//! others are JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The key of every CTA event (Avro `arrival.key`, `turnstile.key`, `weather.key`): the
/// wall-clock time it was produced, ms since the Unix epoch, as the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventKey {
    pub timestamp: i64,
}

/// The header the simulation's producers put the simulated time of an event in (ms
/// since the Unix epoch, as text): the Avro schemas are the original's, and the keys'
/// `timestamp` is the wall clock, as the original's were.
pub const SIM_TIME_HEADER: &str = "cta.sim_time_ms";

/// Headers carrying simulated time `ms`.
pub fn sim_time_headers(ms: i64) -> cta_stream::stream::Headers {
    let mut h = cta_stream::stream::Headers::default();
    h.insert(SIM_TIME_HEADER, ms.to_string());
    h
}

/// The simulated time of an event, from its header.
pub fn sim_time_of(headers: &cta_stream::stream::Headers) -> Option<i64> {
    headers.get_str(SIM_TIME_HEADER)?.parse().ok()
}

impl EventKey {
    pub fn now() -> Self {
        Self {
            timestamp: Utc::now().timestamp_millis(),
        }
    }
}

/// A train arriving at a station (Avro `arrival.value`), on the station's own topic
/// `org.chicago.cta.station.arrivals.<station>`: from `cta_trains` to
/// `cta_train_positions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalValue {
    pub station_id: i32,
    pub train_id: String,
    /// "a" or "b".
    pub direction: String,
    /// "blue", "red" or "green".
    pub line: String,
    pub train_status: String,
    /// None at a train's first arrival.
    pub prev_station_id: Option<i32>,
    pub prev_direction: Option<String>,
}

/// One rider through a station's turnstile (Avro `turnstile.value`), on
/// `org.chicago.cta.turnstile.v1`: from `cta_turnstiles` to `cta_turnstile_summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnstileValue {
    pub station_id: i32,
    pub station_name: String,
    pub line: String,
}

/// A weather reading (Avro `weather.value`), on `org.chicago.cta.weather.v1`: from
/// `cta_weather` (through the REST Proxy) to the global table `weather`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeatherValue {
    /// Degrees Fahrenheit. The schema's `float`: the codec rounds on writing and reads it
    /// into an f64 without loss.
    pub temperature: f64,
    /// "sunny", "partly_cloudy", "cloudy", "windy" or "precipitation".
    pub status: String,
}

/// One step of simulated time, on the clock topic `org.chicago.cta.simulation.clock`
/// (JSON): from `cta_clock` to the producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimTick {
    /// 0 for the first step of this clock, then 1, 2, ...
    pub step: u64,
    /// Simulated time at the start of the step, ms since the Unix epoch (UTC).
    pub sim_time_ms: i64,
    /// Simulated length of a step, ms.
    pub step_ms: i64,
    /// Wall-clock time the tick was emitted, ms since the Unix epoch.
    pub emitted_ms: i64,
}

impl SimTick {
    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.sim_time_ms).unwrap_or_default()
    }

    /// Steps in a simulated hour (12 for 5-minute steps; at least 1).
    pub fn steps_per_hour(&self) -> u32 {
        (3_600_000 / self.step_ms.max(1)).max(1) as u32
    }

    /// Whether a simulated hour starts within this step.
    pub fn starts_an_hour(&self) -> bool {
        let hour = 3_600_000;
        self.sim_time_ms.rem_euclid(hour) == 0
            || self.sim_time_ms.div_euclid(hour)
                != (self.sim_time_ms + self.step_ms - 1).div_euclid(hour)
    }
}

/// A row of the PostgreSQL `stations` table (one stop: a platform in one direction), as
/// Kafka Connect writes it to `org.chicago.cta.stations` (JSON, no schema; Debezium after
/// its unwrap transform, or Confluent's JDBC source) and as `data/cta_stations.csv` holds
/// it. What the app needs of it: the other columns (stop id, direction, stop names) are
/// ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Station {
    pub station_name: String,
    pub station_id: i32,
    pub order: Option<i32>,
    pub red: bool,
    pub blue: bool,
    pub green: bool,
}

/// A station of a simulated line, as the status pages need it: the value of the tables
/// `stations` (changelog `org.chicago.cta.stations.table.v1`, the original's Faust output)
/// and `line_stations`, written by `cta_station_transform`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformedStation {
    pub station_id: i32,
    pub station_name: String,
    pub order: Option<i32>,
    pub line: String,
}

/// Where a train is, its latest arrival: the value of the table `trains`, written by
/// `cta_train_positions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainPosition {
    pub train_id: String,
    pub line: String,
    pub station_id: i32,
    pub direction: String,
    pub prev_station_id: Option<i32>,
    /// Event time of the arrival (its key), ms since the Unix epoch.
    pub at_ms: i64,
}

/// A station's turnstile entries so far, on `TURNSTILE_SUMMARY` (JSON, key the station id
/// as text) as KSQL wrote it: from `cta_turnstile_summary` (or ksqlDB) to the global table
/// `turnstile_summary`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[allow(non_snake_case)] // KSQL's upper-case column names are the wire format
pub struct StationCount {
    pub STATION_ID: i32,
    pub COUNT: i64,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fmt::Debug;
    use std::path::Path;

    use apache_avro::schema::Schema;
    use apache_avro::types::Value;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    fn schema(file: &str) -> Schema {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("schemas")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Schema::parse_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// The Avro type of a field as serde gives it to apache-avro, in the schema's JSON
    /// notation. An `Option` field is the union `["null", T]`: the sample must hold a value.
    fn avro_type_of(file: &str, field: &str, v: &Value) -> serde_json::Value {
        match v {
            Value::Boolean(_) => json!("boolean"),
            Value::Int(_) => json!("int"),
            Value::Long(_) => json!("long"),
            Value::Float(_) => json!("float"),
            Value::Double(_) => json!("double"),
            Value::String(_) => json!("string"),
            Value::Bytes(_) => json!("bytes"),
            Value::Union(_, inner) if **inner != Value::Null => {
                json!(["null", avro_type_of(file, field, inner)])
            }
            other => panic!(
                "{file}: give the sample's field {field} a value of a plain type, not {other:?}"
            ),
        }
    }

    /// `sample` is a record of `file`'s schema: the same field names in the same order,
    /// each of the schema's type, and it goes through the worker's Avro codec unchanged.
    fn check_record<T: Serialize + DeserializeOwned + PartialEq + Debug>(file: &str, sample: &T) {
        let schema = schema(file);
        let Schema::Record(record) = &schema else {
            panic!("{file} is not a record schema");
        };
        let expected: Vec<(String, serde_json::Value)> = record
            .fields
            .iter()
            .map(|f| (f.name.clone(), serde_json::to_value(&f.schema).unwrap()))
            .collect();
        let Value::Record(fields) = apache_avro::to_value(sample).unwrap() else {
            panic!("{file}: the Rust type is not a struct");
        };
        let actual: Vec<(String, serde_json::Value)> = fields
            .iter()
            .zip(&expected)
            .map(|((name, v), (_, want))| {
                let mut got = avro_type_of(file, name, v);
                // The one widening allowed: an f64 for a `float` (WeatherValue's
                // temperature, which the producer computes in f64).
                if got == "double" && *want == "float" {
                    got = json!("float");
                }
                (name.clone(), got)
            })
            .collect();
        assert_eq!(
            fields.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            expected.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            "{file}: the Rust type's fields, in order"
        );
        assert_eq!(actual, expected, "{file}: the fields' types");
        let bytes = cta_stream::codec::encode_avro_datum(&schema, sample)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let back: T = cta_stream::codec::decode_avro_datum(&schema, &mut bytes.as_slice())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(&back, sample, "{file}: through the codec and back");
    }

    #[test]
    fn every_avro_record_matches_its_schema_file() {
        let key = EventKey {
            timestamp: 1_764_230_400_000,
        };
        let mut checked = BTreeSet::new();
        for file in ["arrival_key.json", "turnstile_key.json", "weather_key.json"] {
            check_record(file, &key);
            checked.insert(file);
        }
        check_record(
            "arrival_value.json",
            &ArrivalValue {
                station_id: 40820,
                train_id: "BL000".into(),
                direction: "b".into(),
                line: "blue".into(),
                train_status: "in_service".into(),
                prev_station_id: Some(40890),
                prev_direction: Some("b".into()),
            },
        );
        checked.insert("arrival_value.json");
        check_record(
            "turnstile_value.json",
            &TurnstileValue {
                station_id: 40380,
                station_name: "Clark/Lake".into(),
                line: "blue".into(),
            },
        );
        checked.insert("turnstile_value.json");
        check_record(
            "weather_value.json",
            &WeatherValue {
                temperature: 63.5,
                status: "partly_cloudy".into(),
            },
        );
        checked.insert("weather_value.json");

        // Every schema file has its record type here, under the name its file gives.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let files: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".json"))
            .collect();
        assert_eq!(
            files,
            checked
                .iter()
                .map(|f| f.to_string())
                .collect::<BTreeSet<_>>(),
            "a schema file without its record type in agents/cta/records.rs"
        );
        for f in &files {
            let name = f.trim_end_matches(".json").replacen('_', ".", 1);
            assert_eq!(
                schema(f).name().map(|n| n.fullname(None)),
                Some(name),
                "{f}"
            );
        }
    }

    #[test]
    fn the_json_records_keep_their_shapes() {
        let tick = SimTick {
            step: 3,
            sim_time_ms: 900_000,
            step_ms: 300_000,
            emitted_ms: 7,
        };
        assert_eq!(
            serde_json::to_value(tick).unwrap(),
            json!({"step": 3, "sim_time_ms": 900_000, "step_ms": 300_000, "emitted_ms": 7})
        );
        let station = TransformedStation {
            station_id: 40010,
            station_name: "Austin".into(),
            order: Some(29),
            line: "blue".into(),
        };
        assert_eq!(
            serde_json::to_value(&station).unwrap(),
            json!({"station_id": 40010, "station_name": "Austin", "order": 29, "line": "blue"})
        );
        let position = TrainPosition {
            train_id: "BL000".into(),
            line: "blue".into(),
            station_id: 40820,
            direction: "b".into(),
            prev_station_id: None,
            at_ms: 1_000,
        };
        assert_eq!(
            serde_json::to_value(&position).unwrap(),
            json!({"train_id": "BL000", "line": "blue", "station_id": 40820, "direction": "b",
                   "prev_station_id": null, "at_ms": 1_000})
        );
        let count = StationCount {
            STATION_ID: 40380,
            COUNT: 12,
        };
        assert_eq!(
            serde_json::to_value(&count).unwrap(),
            json!({"STATION_ID": 40380, "COUNT": 12})
        );
    }

    #[test]
    fn ticks_know_their_hour() {
        let tick = |min: i64, step_min: i64| SimTick {
            step: 0,
            sim_time_ms: min * 60_000,
            step_ms: step_min * 60_000,
            emitted_ms: 0,
        };
        assert!(tick(0, 5).starts_an_hour());
        assert!(!tick(5, 5).starts_an_hour());
        assert!(tick(60, 5).starts_an_hour());
        assert!(tick(55, 7).starts_an_hour(), "55..62 crosses the hour");
        assert_eq!(tick(0, 5).steps_per_hour(), 12);
        assert_eq!(tick(0, 120).steps_per_hour(), 1);
    }
}

/// Headways in a window: the gaps between consecutive arrivals at a platform (station,
/// line, direction), in simulated ms. The value of the windowed table `headways`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headway {
    pub count: u64,
    pub total_ms: i64,
    pub min_ms: i64,
    pub max_ms: i64,
}

impl Headway {
    /// These headways and `gap` more.
    pub fn with(self, gap: i64) -> Self {
        if self.count == 0 {
            return Self {
                count: 1,
                total_ms: gap,
                min_ms: gap,
                max_ms: gap,
            };
        }
        Self {
            count: self.count + 1,
            total_ms: self.total_ms + gap,
            min_ms: self.min_ms.min(gap),
            max_ms: self.max_ms.max(gap),
        }
    }

    /// The mean gap in ms, when there is one.
    pub fn mean_ms(&self) -> Option<i64> {
        (self.count > 0).then(|| self.total_ms / self.count as i64)
    }
}
