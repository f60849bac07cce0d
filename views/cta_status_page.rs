//! The commuters' status page (step 6 of the CTA system): the weather, and every station
//! of the blue, green and red lines by order with the trains at each platform and the
//! station's turnstile entries. `GET /` renders it on the server (tera, readable without
//! JavaScript); `GET /events` pushes every change as server-sent events, so the page moves
//! without reloading; `GET /api/status` is the same data as JSON; `GET /lines/{line}` one
//! line alone.

use crate::tables::cta::{LineStationsAll, TrainsAll, TurnstileSummary, Weather};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cta_stream::prelude::*;
use cta_stream::register_view;
use cta_stream::table::GlobalTable;
use cta_stream::web::views::{ViewContext, ViewFilter};
use tokio::sync::watch;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::agents::cta::records::{
    EventKey, StationCount, TrainPosition, TransformedStation, WeatherValue,
};

/// Lines in the order the original page shows them.
const LINES: [&str; 3] = ["blue", "green", "red"];

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub weather: Option<WeatherView>,
    pub lines: Vec<LineView>,
    pub stations: usize,
    pub trains: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct WeatherView {
    pub temperature: String,
    pub status: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LineView {
    pub line: String,
    pub stations: Vec<StationView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StationView {
    pub station_id: i32,
    pub name: String,
    pub order: Option<i32>,
    pub train_a: Vec<String>,
    pub train_b: Vec<String>,
    pub entries: i64,
}

/// The last status built, with the table versions it was built from.
type Cached = ([u64; 4], Arc<Status>);

/// The global tables the page reads.
#[derive(Clone)]
struct Sources {
    stations: GlobalTable<String, TransformedStation>,
    trains: GlobalTable<String, TrainPosition>,
    weather: GlobalTable<EventKey, WeatherValue>,
    summary: GlobalTable<String, StationCount>,
    cache: Arc<Mutex<Option<Cached>>>,
}

impl Sources {
    fn versions(&self) -> [u64; 4] {
        [
            *self.stations.changes().borrow(),
            *self.trains.changes().borrow(),
            *self.weather.changes().borrow(),
            *self.summary.changes().borrow(),
        ]
    }

    async fn status(&self) -> anyhow::Result<Arc<Status>> {
        let versions = self.versions();
        if let Some((v, s)) = self.cache.lock().map_err(|_| anyhow!("poisoned"))?.as_ref() {
            if *v == versions {
                return Ok(s.clone());
            }
        }
        let status = Arc::new(build_status(
            self.stations.entries().await?,
            self.trains.entries().await?,
            self.weather.entries().await?,
            self.summary.entries().await?,
        ));
        *self.cache.lock().map_err(|_| anyhow!("poisoned"))? = Some((versions, status.clone()));
        Ok(status)
    }

    fn changes(&self) -> Vec<watch::Receiver<u64>> {
        vec![
            self.stations.changes(),
            self.trains.changes(),
            self.weather.changes(),
            self.summary.changes(),
        ]
    }
}

/// Puts the tables together: trains at their station's platform (their line's row),
/// entries by station id, the latest weather reading.
pub fn build_status(
    stations: Vec<(String, TransformedStation)>,
    trains: Vec<(String, TrainPosition)>,
    weather: Vec<(EventKey, WeatherValue)>,
    summary: Vec<(String, StationCount)>,
) -> Status {
    let entries: BTreeMap<i32, i64> = summary
        .into_iter()
        .map(|(_, c)| (c.STATION_ID, c.COUNT))
        .collect();
    let mut rows: BTreeMap<(String, i32), StationView> = stations
        .into_iter()
        .map(|(_, s)| {
            (
                (s.line.clone(), s.station_id),
                StationView {
                    station_id: s.station_id,
                    name: s.station_name,
                    order: s.order,
                    train_a: Vec::new(),
                    train_b: Vec::new(),
                    entries: entries.get(&s.station_id).copied().unwrap_or(0),
                },
            )
        })
        .collect();
    let n_trains = trains.len();
    for (_, t) in trains {
        if let Some(row) = rows.get_mut(&(t.line.clone(), t.station_id)) {
            match t.direction.as_str() {
                "a" => row.train_a.push(t.train_id),
                _ => row.train_b.push(t.train_id),
            }
        }
    }
    let n_stations = rows.len();
    let lines = LINES
        .iter()
        .map(|line| {
            let mut stations: Vec<StationView> = rows
                .iter()
                .filter(|((l, _), _)| l == line)
                .map(|(_, v)| v.clone())
                .collect();
            stations.sort_by_key(|s| (s.order.unwrap_or(i32::MAX), s.station_id));
            for s in &mut stations {
                s.train_a.sort();
                s.train_b.sort();
            }
            LineView {
                line: line.to_string(),
                stations,
            }
        })
        .collect();
    let weather = weather
        .into_iter()
        .max_by_key(|(k, _)| k.timestamp)
        .map(|(k, w)| WeatherView {
            temperature: format!("{:.1}", w.temperature),
            status: w.status.replace('_', " "),
            at_ms: k.timestamp,
        });
    Status {
        weather,
        lines,
        stations: n_stations,
        trains: n_trains,
    }
}

fn error_response(e: impl std::fmt::Display) -> warp::reply::Response {
    tracing::warn!("status page: {e}");
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({"error": e.to_string()})),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .into_response()
}

fn render(tera: &tera::Tera, status: &Status, only: Option<&str>) -> warp::reply::Response {
    let mut ctx = tera::Context::new();
    ctx.insert("weather", &status.weather);
    let lines: Vec<&LineView> = status
        .lines
        .iter()
        .filter(|l| only.is_none_or(|o| o == l.line))
        .collect();
    ctx.insert("lines", &lines);
    ctx.insert("only", &only);
    match tera.render("status.html", &ctx) {
        Ok(html) => warp::reply::html(html).into_response(),
        Err(e) => error_response(format!("template: {e:?}")),
    }
}

/// Server-sent events: the whole status now, then again after every change (at most
/// every 100 ms: bursts of events make one update).
fn events(
    sources: Sources,
    shutdown: watch::Receiver<bool>,
) -> impl futures::Stream<Item = Result<warp::sse::Event, Infallible>> {
    // The receivers live as long as the stream: a change that lands while a status is
    // being built stays unseen, so it wakes the next round instead of being lost.
    let changes = sources.changes();
    let state = (sources, changes, shutdown, true);
    futures::stream::unfold(
        state,
        |(sources, mut changes, mut shutdown, first)| async move {
            if !first {
                let any_change =
                    futures::future::select_all(changes.iter_mut().map(|c| Box::pin(c.changed())));
                tokio::select! {
                    _ = any_change => {}
                    _ = shutdown.wait_for(|s| *s) => return None,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for c in &mut changes {
                c.borrow_and_update();
            }
            let event = match sources.status().await {
                Ok(s) => warp::sse::Event::default()
                    .event("status")
                    .json_data(&*s)
                    .unwrap_or_default(),
                Err(e) => warp::sse::Event::default()
                    .event("error")
                    .data(e.to_string()),
            };
            Some((Ok(event), (sources, changes, shutdown, false)))
        },
    )
}

fn status_view(ctx: &ViewContext) -> anyhow::Result<ViewFilter> {
    let template = ctx.path("templates/status.html");
    let mut tera = tera::Tera::default();
    tera.add_template_file(&template, Some("status.html"))
        .map_err(|e| anyhow!("cannot load the template {}: {e:?}", template.display()))?;
    let tera = Arc::new(tera);
    let sources = Sources {
        stations: ctx.global_table::<LineStationsAll>()?,
        trains: ctx.global_table::<TrainsAll>()?,
        weather: ctx.global_table::<Weather>()?,
        summary: ctx.global_table::<TurnstileSummary>()?,
        cache: Arc::default(),
    };
    let with = {
        let s = sources.clone();
        warp::any().map(move || s.clone())
    };
    let with_tera = warp::any().map(move || tera.clone());
    let page = warp::path::end()
        .and(warp::get())
        .and(with.clone())
        .and(with_tera.clone())
        .then(|s: Sources, tera: Arc<tera::Tera>| async move {
            match s.status().await {
                Ok(status) => render(&tera, &status, None),
                Err(e) => error_response(e),
            }
        });
    let line = warp::path!("lines" / String)
        .and(warp::get())
        .and(with.clone())
        .and(with_tera)
        .then(|line: String, s: Sources, tera: Arc<tera::Tera>| async move {
            if !LINES.contains(&line.as_str()) {
                return warp::reply::with_status(
                    warp::reply::json(&serde_json::json!({"error": format!("no line {line}: blue, green or red")})),
                    StatusCode::NOT_FOUND,
                )
                .into_response();
            }
            match s.status().await {
                Ok(status) => render(&tera, &status, Some(&line)),
                Err(e) => error_response(e),
            }
        });
    let api = warp::path!("api" / "status")
        .and(warp::get())
        .and(with.clone())
        .then(|s: Sources| async move {
            match s.status().await {
                Ok(status) => warp::reply::json(&*status).into_response(),
                Err(e) => error_response(e),
            }
        });
    let shutdown = ctx.shutdown();
    let sse = warp::path!("events")
        .and(warp::get())
        .and(with)
        .map(move |s: Sources| {
            warp::sse::reply(warp::sse::keep_alive().stream(events(s, shutdown.clone())))
                .into_response()
        });
    Ok(page
        .or(line)
        .unify()
        .or(api)
        .unify()
        .or(sse)
        .unify()
        .boxed())
}
register_view!("cta_status", status_view);
