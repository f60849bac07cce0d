//! A station's page: `GET /stations/{station_id}` (HTML rendered on the server, readable
//! on a phone) and `GET /api/stations/{station_id}` (the same as JSON): the station's
//! lines, the trains at its platforms and those arriving next, its last arrivals, its
//! turnstile entries per hour over the last simulated day drawn as 24 bars (SVG), and the
//! weather. Linked from the status page.

use std::collections::BTreeMap;
use std::sync::Arc;

use cta_stream::prelude::*;
use cta_stream::register_view;
use cta_stream::table::{GlobalTable, GlobalWindowedTable};
use cta_stream::web::views::{ViewContext, ViewFilter};
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::agents::cta::records::{
    EventKey, Headway, StationCount, TrainPosition, TransformedStation, WeatherValue,
};
use crate::tables::cta::{
    HeadwaysAll, LastArrivalsAll, LineStationsAll, StationHourlyEntriesAll, TrainsAll,
    TurnstileSummary, Weather,
};
use crate::agents::cta_headways::platform_key;

const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Clone, Serialize)]
pub struct StationPage {
    pub station_id: i32,
    pub name: String,
    pub lines: Vec<String>,
    /// Trains whose latest arrival is this station, newest first.
    pub at_platform: Vec<TrainAt>,
    /// Trains one station away, heading here.
    pub arriving_next: Vec<TrainAt>,
    /// Turnstile entries since the start.
    pub entries: i64,
    /// Entries per simulated hour, the 24 hours up to the newest one counted.
    pub entries_per_hour: Vec<HourBar>,
    pub weather: Option<WeatherNow>,
    /// Per platform (line and direction): the last arrival and the headways of the
    /// newest simulated hour.
    pub headways: Vec<PlatformHeadway>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlatformHeadway {
    pub line: String,
    pub direction: String,
    /// Simulated time of the last arrival, ms since the Unix epoch.
    pub last_arrival_ms: Option<i64>,
    /// Headways counted in the newest simulated hour.
    pub count: u64,
    pub mean_minutes: Option<f64>,
    pub min_minutes: Option<f64>,
    pub max_minutes: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainAt {
    pub train_id: String,
    pub line: String,
    pub direction: String,
    /// Where it is: this station, or the one it comes from.
    pub station_id: i32,
    pub station_name: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HourBar {
    /// Start of the hour, ms since the Unix epoch (simulated time).
    pub start_ms: i64,
    /// "14:00" (UTC, as the simulation's clock).
    pub label: String,
    pub entries: u64,
    /// The bar in the chart's 0..100 coordinates.
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WeatherNow {
    pub temperature: String,
    pub status: String,
    pub at_ms: i64,
}

/// The chart's bars for `hours` (start ms → entries): 24 hours ending with the hour
/// starting at `newest` (the simulation's latest hour; the newest of `hours` when
/// `None`), hours without entries at 0, heights scaled to the busiest hour.
pub fn hour_bars(hours: &BTreeMap<i64, u64>, newest: Option<i64>) -> Vec<HourBar> {
    let Some(last) = newest.or_else(|| hours.keys().next_back().copied()) else {
        return Vec::new();
    };
    let first = last - 23 * HOUR_MS;
    let counts: Vec<(i64, u64)> = (0..24)
        .map(|i| {
            let start = first + i * HOUR_MS;
            (start, hours.get(&start).copied().unwrap_or(0))
        })
        .collect();
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let slot = 100.0 / 24.0;
    counts
        .into_iter()
        .enumerate()
        .map(|(i, (start, n))| {
            let height = 90.0 * n as f64 / max;
            HourBar {
                start_ms: start,
                label: chrono::DateTime::from_timestamp_millis(start)
                    .map(|t| t.format("%H:00").to_string())
                    .unwrap_or_default(),
                entries: n,
                x: i as f64 * slot + slot * 0.1,
                y: 100.0 - height,
                width: slot * 0.8,
                height,
            }
        })
        .collect()
}

/// Puts the page together from the tables; `None` when no line has the station.
pub fn build_page(
    station_id: i32,
    stations: &[TransformedStation],
    trains: &[TrainPosition],
    entries: i64,
    hours: &BTreeMap<i64, u64>,
    newest_hour: Option<i64>,
    weather: Option<(EventKey, WeatherValue)>,
) -> Option<StationPage> {
    let own: Vec<&TransformedStation> = stations
        .iter()
        .filter(|s| s.station_id == station_id)
        .collect();
    let name = own.first()?.station_name.clone();
    let mut lines: Vec<String> = own.iter().map(|s| s.line.clone()).collect();
    lines.sort();
    lines.dedup();
    let name_of = |id: i32| {
        stations
            .iter()
            .find(|s| s.station_id == id)
            .map(|s| s.station_name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let train_at = |t: &TrainPosition| TrainAt {
        train_id: t.train_id.clone(),
        line: t.line.clone(),
        direction: t.direction.clone(),
        station_id: t.station_id,
        station_name: name_of(t.station_id),
        at_ms: t.at_ms,
    };
    let mut at_platform: Vec<TrainAt> = trains
        .iter()
        .filter(|t| t.station_id == station_id)
        .map(train_at)
        .collect();
    at_platform.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(a.train_id.cmp(&b.train_id)));
    // On each line: `b` trains move toward higher orders, `a` toward lower ones; the
    // trains one station before this one in their direction arrive here next.
    let mut arriving_next = Vec::new();
    for s in &own {
        let Some(order) = s.order else { continue };
        let mut line: Vec<&TransformedStation> = stations
            .iter()
            .filter(|x| x.line == s.line && x.order.is_some())
            .collect();
        line.sort_by_key(|x| x.order);
        let Some(i) = line.iter().position(|x| x.order == Some(order)) else {
            continue;
        };
        let before = i.checked_sub(1).map(|j| (line[j].station_id, "b"));
        let after = line.get(i + 1).map(|x| (x.station_id, "a"));
        for (from, direction) in before.into_iter().chain(after) {
            arriving_next.extend(
                trains
                    .iter()
                    .filter(|t| t.line == s.line && t.station_id == from && t.direction == direction)
                    .map(train_at),
            );
        }
    }
    arriving_next.sort_by(|a, b| a.line.cmp(&b.line).then(a.train_id.cmp(&b.train_id)));
    Some(StationPage {
        station_id,
        name,
        lines,
        at_platform,
        arriving_next,
        entries,
        entries_per_hour: hour_bars(hours, newest_hour),
        headways: Vec::new(),
        weather: weather.map(|(k, w)| WeatherNow {
            temperature: format!("{:.1}", w.temperature),
            status: w.status.replace('_', " "),
            at_ms: k.timestamp,
        }),
    })
}

#[derive(Clone)]
struct Sources {
    stations: GlobalTable<String, TransformedStation>,
    trains: GlobalTable<String, TrainPosition>,
    weather: GlobalTable<EventKey, WeatherValue>,
    summary: GlobalTable<String, StationCount>,
    hourly: GlobalWindowedTable<i32, u64>,
    headways: GlobalWindowedTable<String, Headway>,
    last_arrivals: GlobalTable<String, i64>,
}

impl Sources {
    async fn page(&self, station_id: i32) -> anyhow::Result<Option<StationPage>> {
        let stations: Vec<TransformedStation> = self
            .stations
            .entries()
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        let trains: Vec<TrainPosition> = self
            .trains
            .entries()
            .await?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        let entries = self
            .summary
            .get(&station_id.to_string())
            .await?
            .map_or(0, |c| c.COUNT);
        let weather = self
            .weather
            .entries()
            .await?
            .into_iter()
            .max_by_key(|(k, _)| k.timestamp);
        // The last simulated day: up to the hour of the newest entry of any station.
        let newest = self
            .hourly
            .stream_time()?
            .map(|t| t - t.rem_euclid(HOUR_MS));
        let hours: BTreeMap<i64, u64> = match newest {
            Some(n) => self
                .hourly
                .windows(&station_id, n - 23 * HOUR_MS, n)
                .await?
                .into_iter()
                .map(|w| (w.start, w.value))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut page = build_page(
            station_id, &stations, &trains, entries, &hours, newest, weather,
        );
        if let Some(p) = page.as_mut() {
            p.headways = self.platform_headways(p).await?;
        }
        Ok(page)
    }

    async fn platform_headways(&self, p: &StationPage) -> anyhow::Result<Vec<PlatformHeadway>> {
        let newest = self
            .headways
            .stream_time()?
            .map(|t| t - t.rem_euclid(HOUR_MS));
        let minutes = |ms: i64| ms as f64 / 60_000.0;
        let mut out = Vec::new();
        for line in &p.lines {
            for direction in ["a", "b"] {
                let key = platform_key(p.station_id, line, direction);
                let hour = match newest {
                    Some(n) => self.headways.windows(&key, n, n).await?.pop(),
                    None => None,
                };
                let h = hour.map(|w| w.value).unwrap_or_default();
                out.push(PlatformHeadway {
                    line: line.clone(),
                    direction: direction.into(),
                    last_arrival_ms: self.last_arrivals.get(&key).await?,
                    count: h.count,
                    mean_minutes: h.mean_ms().map(minutes),
                    min_minutes: (h.count > 0).then(|| minutes(h.min_ms)),
                    max_minutes: (h.count > 0).then(|| minutes(h.max_ms)),
                });
            }
        }
        Ok(out)
    }
}

fn json_error(code: StatusCode, message: String) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": message })),
        code,
    )
    .into_response()
}

/// The page, or why not: 400 for an id that is not a number, 404 for no such station,
/// 503 while a table cannot be read.
async fn answer(
    sources: &Sources,
    id: &str,
) -> Result<StationPage, warp::reply::Response> {
    let Ok(station_id) = id.parse::<i32>() else {
        return Err(json_error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a station id (a number such as 40380)"),
        ));
    };
    match sources.page(station_id).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(json_error(
            StatusCode::NOT_FOUND,
            format!("no station {station_id} on the blue, green or red line"),
        )),
        Err(e) => {
            tracing::warn!("station page: {e}");
            Err(json_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
    }
}

fn station_view(ctx: &ViewContext) -> anyhow::Result<ViewFilter> {
    let template = ctx.path("templates/station.html");
    let mut tera = tera::Tera::default();
    tera.add_template_file(&template, Some("station.html"))
        .map_err(|e| anyhow!("cannot load the template {}: {e:?}", template.display()))?;
    let tera = Arc::new(tera);
    let sources = Sources {
        stations: ctx.global_table::<LineStationsAll>()?,
        trains: ctx.global_table::<TrainsAll>()?,
        weather: ctx.global_table::<Weather>()?,
        summary: ctx.global_table::<TurnstileSummary>()?,
        hourly: ctx.global_windowed_table::<StationHourlyEntriesAll>()?,
        headways: ctx.global_windowed_table::<HeadwaysAll>()?,
        last_arrivals: ctx.global_table::<LastArrivalsAll>()?,
    };
    let with = warp::any().map(move || sources.clone());
    let page = warp::path!("stations" / String)
        .and(warp::get())
        .and(with.clone())
        .then(move |id: String, s: Sources| {
            let tera = tera.clone();
            async move {
                match answer(&s, &id).await {
                    Ok(p) => {
                        let mut ctx = tera::Context::new();
                        ctx.insert("s", &p);
                        match tera.render("station.html", &ctx) {
                            Ok(html) => warp::reply::html(html).into_response(),
                            Err(e) => json_error(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                format!("template: {e:?}"),
                            ),
                        }
                    }
                    Err(r) => r,
                }
            }
        });
    let api = warp::path!("api" / "stations" / String)
        .and(warp::get())
        .and(with)
        .then(|id: String, s: Sources| async move {
            match answer(&s, &id).await {
                Ok(p) => warp::reply::json(&p).into_response(),
                Err(r) => r,
            }
        });
    Ok(page.or(api).unify().boxed())
}
register_view!("cta_station", station_view);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_24_hourly_bars_ending_with_the_newest_hour() {
        let day = 1_796_400_000_000 - 1_796_400_000_000 % 86_400_000;
        let hours: BTreeMap<i64, u64> = [(day + 5 * HOUR_MS, 10), (day + 23 * HOUR_MS, 40)]
            .into_iter()
            .collect();
        let bars = hour_bars(&hours, None);
        assert_eq!(bars.len(), 24);
        assert_eq!(bars[0].label, "00:00");
        assert_eq!(bars[23].label, "23:00");
        assert_eq!(bars[5].entries, 10);
        assert_eq!(bars[23].entries, 40);
        assert!((bars[23].height - 90.0).abs() < 1e-9, "the busiest hour is the tallest");
        assert!((bars[5].height - 22.5).abs() < 1e-9);
        assert_eq!(bars[6].height, 0.0);
        assert!(bars.iter().all(|b| b.x >= 0.0 && b.x + b.width <= 100.0));
        assert!(hour_bars(&BTreeMap::new(), None).is_empty());
        let later = hour_bars(&hours, Some(day + 25 * HOUR_MS));
        assert_eq!(later[0].label, "02:00", "the day ends with the newest hour given");
        assert_eq!(later[21].entries, 40);
    }

    fn station(id: i32, name: &str, order: i32, line: &str) -> TransformedStation {
        TransformedStation {
            station_id: id,
            station_name: name.into(),
            order: Some(order),
            line: line.into(),
        }
    }

    fn train(id: &str, line: &str, at: i32, direction: &str, at_ms: i64) -> TrainPosition {
        TrainPosition {
            train_id: id.into(),
            line: line.into(),
            station_id: at,
            direction: direction.into(),
            prev_station_id: None,
            at_ms,
        }
    }

    #[test]
    fn trains_one_station_away_heading_here_arrive_next() {
        let stations = vec![
            station(1, "One", 1, "blue"),
            station(2, "Two", 2, "blue"),
            station(3, "Three", 3, "blue"),
            station(2, "Two", 7, "red"),
        ];
        let trains = vec![
            train("BL1", "blue", 1, "b", 5),  // before, heading up: next
            train("BL2", "blue", 1, "a", 5),  // before, heading away
            train("BL3", "blue", 3, "a", 5),  // after, heading down: next
            train("BL4", "blue", 2, "b", 9),  // here
            train("RD1", "red", 2, "a", 7),   // here, on red
        ];
        let p = build_page(2, &stations, &trains, 12, &BTreeMap::new(), None, None).unwrap();
        assert_eq!(p.name, "Two");
        assert_eq!(p.lines, vec!["blue", "red"]);
        let ids = |v: &[TrainAt]| v.iter().map(|t| t.train_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&p.arriving_next), vec!["BL1", "BL3"]);
        assert_eq!(ids(&p.at_platform), vec!["BL4", "RD1"], "newest first");
        assert_eq!(p.entries, 12);
        assert!(build_page(99, &stations, &trains, 0, &BTreeMap::new(), None, None).is_none());
    }
}
