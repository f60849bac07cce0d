//! What the HTTP servers (the worker's web server and the embedded services) share:
//! binding and serving until shutdown, request bodies with a size limit, content
//! negotiation.

use std::convert::Infallible;
use std::net::SocketAddr;

use tokio::sync::watch;
use warp::{Filter, Reply};

/// Largest request body the servers accept by default (1 MiB, as Confluent's default
/// `max.request.size`).
pub const BODY_LIMIT: u64 = 1024 * 1024;

/// Binds `addr` and serves `routes` until `shutdown` turns true. The error is the bind's,
/// for the caller to name the address (typically: it is taken).
pub async fn serve<F, R>(
    routes: F,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>>
where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(serve_on(routes, listener, shutdown))
}

/// Serves `routes` on a bound `listener` (one bound to port 0 tells its port first).
pub fn serve_on<F, R>(
    routes: F,
    listener: tokio::net::TcpListener,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>
where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let mut stop = shutdown;
    let server = warp::serve(routes).incoming(listener).graceful(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    tokio::spawn(server.run())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_weighs_client_and_server_quality() {
        let offers = [("application/a", 1.0), ("application/b", 0.5)];
        assert_eq!(negotiate(None, &offers), Some("application/a"));
        assert_eq!(negotiate(Some(" "), &offers), Some("application/a"));
        assert_eq!(negotiate(Some("*/*"), &offers), Some("application/a"));
        assert_eq!(
            negotiate(Some("application/a; q=0.1, application/b"), &offers),
            Some("application/b")
        );
        assert_eq!(
            negotiate(Some("application/*"), &offers),
            Some("application/a")
        );
        assert_eq!(negotiate(Some("application/b; q=0"), &offers), None);
        assert_eq!(negotiate(Some("text/html"), &offers), None);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let chunks = |n: usize| {
            futures::stream::iter(
                (0..n).map(|_| Ok::<_, warp::Error>(bytes::Bytes::from_static(b"0123456789"))),
            )
        };
        let headers = warp::http::HeaderMap::new();
        assert_eq!(read_body(&headers, chunks(3), 30).await.unwrap().len(), 30);
        assert!(matches!(
            read_body(&headers, chunks(4), 30).await,
            Err(BodyError::TooLarge(30))
        ));
        let mut declared = warp::http::HeaderMap::new();
        declared.insert(warp::http::header::CONTENT_LENGTH, "1000".parse().unwrap());
        assert!(matches!(
            read_body(&declared, chunks(0), 30).await,
            Err(BodyError::TooLarge(30))
        ));
    }
}
