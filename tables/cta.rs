//! Tables of the CTA app.

use cta_stream::register_table;

use crate::agents::cta_stations::TransformedStation;

// Stations of the simulated lines by station_id, written by `cta_station_transform`; its
// changelog `org.chicago.cta.stations.table.v1` is the original's Faust output topic.
register_table!("stations", i32, TransformedStation);
// Turnstile events per station_id, written by `cta_turnstile_summary`.
register_table!("turnstile_counts", i32, i64);
