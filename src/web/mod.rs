//! The worker's HTTP server (warp): health and agent views, as JSON.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::watch;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::app::{AppError, AppShared};

pub mod metrics;
pub mod performance;
pub mod tables;
pub mod views;

/// Binds `addr` (a clear error if it is taken) and serves until shutdown.
pub async fn serve(
    shared: Arc<AppShared>,
    views: Vec<views::ViewFilter>,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, AppError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| AppError::WebBind {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
    let mut stop = shutdown;
    let server = warp::serve(routes(shared, views))
        .incoming(listener)
        .graceful(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
    Ok(tokio::spawn(server.run()))
}

pub fn routes(
    shared: Arc<AppShared>,
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
        .map(|s: Arc<AppShared>| health(&s));
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with.clone())
        .map(|s: Arc<AppShared>| {
            warp::reply::with_header(
                metrics::render(&s),
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8",
            )
        });
    let performance = warp::path!("performance")
        .and(warp::get())
        .and(with.clone())
        .map(|s: Arc<AppShared>| warp::reply::json(&performance::render(&s)));
    let agents = warp::path!("agents")
        .and(warp::get())
        .and(with.clone())
        .map(|s: Arc<AppShared>| warp::reply::json(&agents(&s)));
    let index = warp::path::end()
        .and(warp::get())
        .and(with)
        .map(|s: Arc<AppShared>| {
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

fn health(s: &AppShared) -> warp::reply::WithStatus<warp::reply::Json> {
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

fn agents(s: &AppShared) -> serde_json::Value {
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
                "codec": a.codec.to_string(),
                "key_codec": a.key_codec.to_string(),
                "concurrency": a.concurrency,
                "on_error": a.on_error.to_string(),
                "dead_letter_topic": s.settings.dead_letter_topic(name),
                "group_id": s.settings.group_id(name),
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

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the limit (given).
    TooLarge(u64),
    Read(String),
}

/// Reads a request body of at most `limit` bytes. Bodies a little over the limit are
/// drained (discarded) before the caller answers 413, so that the client reads the answer
/// instead of a reset connection; far larger ones are refused at once.
pub async fn read_body<S, B>(
    headers: &warp::http::HeaderMap,
    body: S,
    limit: u64,
) -> Result<Vec<u8>, BodyError>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures::StreamExt;
    let drain_limit = limit.saturating_mul(8);
    let declared = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > drain_limit) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut seen: u64 = 0;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        while chunk.has_remaining() {
            let c = chunk.chunk();
            let n = c.len();
            seen += n as u64;
            if seen <= limit {
                buf.extend_from_slice(c);
            }
            chunk.advance(n);
        }
        if seen > drain_limit {
            break;
        }
    }
    if seen > limit {
        return Err(BodyError::TooLarge(limit));
    }
    Ok(buf)
}

/// HTTP content negotiation: the best of `offers` (media type, server quality) for an
/// `Accept` header; the first offer when there is none, `None` (406) when nothing fits.
pub fn negotiate(accept: Option<&str>, offers: &[(&'static str, f32)]) -> Option<&'static str> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return offers.first().map(|(o, _)| *o);
    };
    let mut best: Option<(&'static str, f32)> = None;
    for &(offer, qs) in offers {
        let mut q_best: Option<(u8, f32)> = None; // (specificity, q)
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let specificity = if range == offer {
                2
            } else if range == "application/*" {
                1
            } else if range == "*/*" || range == "*" {
                0
            } else {
                continue;
            };
            if q_best.is_none_or(|(s, _)| specificity > s) {
                q_best = Some((specificity, q));
            }
        }
        if let Some((_, q)) = q_best {
            let score = q * qs;
            if score > 0.0 && best.is_none_or(|(_, b)| score > b) {
                best = Some((offer, score));
            }
        }
    }
    best.map(|(o, _)| o)
}

/// Percent-decodes one URL path segment (warp hands segments over encoded); invalid
/// escapes are kept as they are.
pub fn percent_decode(segment: &str) -> String {
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_percent_escapes_and_leaves_the_rest() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%22x%22"), "\"x\"");
        assert_eq!(
            percent_decode("org.chicago.cta.weather.v1-value"),
            "org.chicago.cta.weather.v1-value"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
