//! The worker's HTTP server (warp): health and agent views, as JSON.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::watch;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::kafka::Names;
use crate::worker::WorkerState;

pub mod metrics;
pub mod performance;
pub mod tables;
pub mod views;

/// The web server could not listen on its address.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot serve the web endpoints on {addr}: {message} (set web.bind, or web.enabled = false)"
)]
pub struct BindError {
    pub addr: String,
    pub message: String,
}

/// Binds `addr` (a clear error if it is taken) and serves until shutdown.
pub async fn serve(
    shared: Arc<WorkerState>,
    views: Vec<views::ViewFilter>,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, BindError> {
    crate::http::server::serve(routes(shared, views), addr, shutdown)
        .await
        .map_err(|e| BindError {
            addr: addr.to_string(),
            message: e.to_string(),
        })
}

pub fn routes(
    shared: Arc<WorkerState>,
    views: Vec<views::ViewFilter>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    // The app's views come after the runtime's own endpoints and before its index, so a
    // view may take `/`.
    let app_views = views
        .into_iter()
        .reduce(|a, b| a.or(b).unify().boxed())
        .unwrap_or_else(|| {
            warp::any()
                .and_then(|| async { Err::<warp::reply::Response, _>(warp::reject::not_found()) })
                .boxed()
        });
    let tables = tables::routes(shared.clone());
    let with = warp::any().map(move || shared.clone());
    let health = warp::path!("health")
        .and(warp::get())
        .and(with.clone())
        .map(|s: Arc<WorkerState>| health(&s));
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with.clone())
        .map(|s: Arc<WorkerState>| {
            warp::reply::with_header(
                metrics::render(&s),
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8",
            )
        });
    let performance = warp::path!("performance")
        .and(warp::get())
        .and(with.clone())
        .map(|s: Arc<WorkerState>| warp::reply::json(&performance::render(&s)));
    let agents = warp::path!("agents")
        .and(warp::get())
        .and(with.clone())
        .map(|s: Arc<WorkerState>| warp::reply::json(&agents(&s)));
    let index = warp::path::end()
        .and(warp::get())
        .and(with)
        .map(|s: Arc<WorkerState>| {
            warp::reply::json(&json!({
                "app": s.settings.app.id,
                "endpoints": ["/health", "/metrics", "/performance", "/agents", "/tables", "/tables/{name}", "/tables/{name}/{key}"],
            }))
        });
    health
        .or(metrics)
        .or(performance)
        .or(agents)
        .or(tables)
        .or(app_views)
        .or(index)
        .recover(handle_rejection)
}

fn health(s: &WorkerState) -> warp::reply::WithStatus<warp::reply::Json> {
    let broker = s.broker.snapshot();
    let agents: serde_json::Map<String, serde_json::Value> = s
        .agents
        .iter()
        .map(|(n, st)| {
            (
                n.clone(),
                serde_json::to_value(st.snapshot()).unwrap_or_default(),
            )
        })
        .collect();
    let verdict = crate::liveness::assess(s);
    let ok = verdict.healthy();
    let body = json!({
        "status": if ok { "ok" } else { "failing" },
        "reasons": verdict.reasons,
        "warnings": verdict.warnings,
        "app": s.settings.app.id,
        "uptime_secs": s.started.elapsed().as_secs(),
        "broker": broker,
        // Records handed to the producer and not yet acknowledged by the broker: a
        // number that keeps growing means the worker produces faster than Kafka takes.
        "producer": {"in_flight": s.producer.in_flight()},
        "agents": agents,
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    warp::reply::with_status(warp::reply::json(&body), code)
}

fn agents(s: &WorkerState) -> serde_json::Value {
    let list: Vec<serde_json::Value> = s
        .settings
        .agents
        .iter()
        .map(|(name, a)| {
            json!({
                "name": name,
                "function": a.function_name(name),
                "source": a.source().to_string(),
                "sinks": a.sinks,
                "stages": a.stages,
                "codec": a.codec.to_string(),
                "key_codec": a.key_codec.to_string(),
                "concurrency": a.concurrency,
                "on_error": a.on_error.to_string(),
                "dead_letter_topic": Names::new(&s.settings).dead_letter_topic(name),
                "group_id": Names::new(&s.settings).agent_group(name),
                "enabled": a.enabled,
                "status": s.agents.get(name).map(|st| st.snapshot()),
            })
        })
        .collect();
    json!({ "agents": list })
}

/// Every error is JSON with the status code in it, never an HTML page or a panic.
pub async fn handle_rejection(err: Rejection) -> Result<impl Reply, Infallible> {
    let (code, message) = if err.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".to_string())
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_string(),
        )
    } else if let Some(e) = err.find::<warp::reject::InvalidQuery>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if let Some(e) = err.find::<warp::reject::PayloadTooLarge>() {
        (StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, format!("{err:?}"))
    };
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({ "error": message, "status": code.as_u16() })),
        code,
    ))
}
