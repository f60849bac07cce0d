//! Tables of the CTA app.

use cta_stream::register_table;

use crate::agents::cta::records::{
    EventKey, Headway, StationCount, TrainPosition, TransformedStation, WeatherValue,
};

// Stations of the simulated lines by station_id, written by `cta_station_transform`; its
// changelog `org.chicago.cta.stations.table.v1` is the original's Faust output topic.
register_table!(pub Stations = "stations", i32 => TransformedStation);
// Turnstile events per station_id, written by `cta_turnstile_summary`.
register_table!(pub TurnstileCounts = "turnstile_counts", i32 => i64);
// Stations by line ("blue:40380"), written by `cta_station_transform`: a station on two
// lines is on both, where `stations` (by station_id, the original's table) keeps one.
register_table!(pub LineStations = "line_stations", String => TransformedStation);
// The whole of line_stations, on every worker (the status page reads it).
register_table!(pub LineStationsAll = "line_stations_all", String => TransformedStation);
// Each train's latest arrival, written by `cta_train_positions`, and its global mirror.
register_table!(pub Trains = "trains", String => TrainPosition);
register_table!(pub TrainsAll = "trains_all", String => TrainPosition);
// Weather readings by their Avro key, followed from org.chicago.cta.weather.v1.
register_table!(pub Weather = "weather", EventKey => WeatherValue);
// TURNSTILE_SUMMARY followed: station id (text) → {"STATION_ID", "COUNT"}.
register_table!(pub TurnstileSummary = "turnstile_summary", String => StationCount);
// Turnstile entries per line, written by `cta_line_entries` (re-keyed by line with
// `group_by`), and its global mirror for the pages.
register_table!(pub LineEntries = "line_entries", String => u64);
register_table!(pub LineEntriesAll = "line_entries_all", String => u64);
// Turnstile entries per station and simulated hour (a tumbling windowed table), written by
// `cta_station_entries`, and its global mirror for the station page.
register_table!(pub StationHourlyEntries = "station_hourly_entries", i32 => u64);
register_table!(pub StationHourlyEntriesAll = "station_hourly_entries_all", i32 => u64);
// Headways per platform ("<station_id>:<line>:<direction>") and simulated hour, written by
// `cta_headways` with the last arrival per platform; the mirrors for the station page.
register_table!(pub Headways = "headways", String => Headway);
register_table!(pub HeadwaysAll = "headways_all", String => Headway);
register_table!(pub LastArrivals = "last_arrivals", String => i64);
register_table!(pub LastArrivalsAll = "last_arrivals_all", String => i64);
