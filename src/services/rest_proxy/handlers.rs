//! Routing, content negotiation and answers of the REST Proxy (spec §2).

use std::sync::Arc;

use futures::Stream;
use warp::http::header::CONTENT_TYPE;
use warp::http::{HeaderMap, Method, Response};
use warp::path::FullPath;
use warp::Buf;

use super::errors::ApiError as E;
use super::produce::{self, Format};
use super::{metadata, EmbeddedRestProxy};
use crate::http::{path_segments, read_body, BODY_LIMIT};
use crate::services::confluent_api::{to_json, Answer, ConfluentApi};

pub const VND_V2: &str = "application/vnd.kafka.v2+json";

/// The API: the media types it answers in (spec §2.1).
pub const API: ConfluentApi = ConfluentApi {
    name: "rest proxy",
    media_types: &[
        (VND_V2, 1.0),
        ("application/vnd.kafka.v1+json", 0.9),
        ("application/vnd.kafka+json", 0.8),
        ("application/json", 0.5),
    ],
};

#[derive(Debug, PartialEq, Eq)]
enum Op {
    Root,
    Topics,
    Topic(String),
    Produce(String),
    Partitions(String),
    Partition(String, i32),
    ProduceToPartition(String, i32),
    Brokers,
}

fn route(method: &Method, path: &str) -> Result<Op, E> {
    let segs = path_segments(path);
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (get, post) = (method == Method::GET, method == Method::POST);
    // A partition that is not a number cannot exist.
    let part = |p: &str| p.parse::<i32>().map_err(|_| E::partition_not_found());
    Ok(match s.as_slice() {
        [] if get => Op::Root,
        ["topics"] if get => Op::Topics,
        ["topics", t] if get => Op::Topic(t.to_string()),
        ["topics", t] if post => Op::Produce(t.to_string()),
        ["topics", t, "partitions"] if get => Op::Partitions(t.to_string()),
        ["topics", t, "partitions", p] if get => Op::Partition(t.to_string(), part(p)?),
        ["topics", t, "partitions", p] if post => Op::ProduceToPartition(t.to_string(), part(p)?),
        ["brokers"] if get => Op::Brokers,
        []
        | ["topics"]
        | ["topics", _]
        | ["topics", _, "partitions"]
        | ["topics", _, "partitions", _]
        | ["brokers"] => return Err(E::method_not_allowed()),
        _ => return Err(E::not_found_path()),
    })
}

/// Entry point of every request.
pub async fn handle<S, B>(
    proxy: Arc<EmbeddedRestProxy>,
    method: Method,
    path: FullPath,
    headers: HeaderMap,
    body: S,
) -> Response<String>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let answer = async {
        match route(&method, path.as_str())? {
            Op::Root => Ok("{}".to_string()),
            Op::Topics => to_json(&metadata::list_topics(&proxy).await?),
            Op::Topic(t) => to_json(&metadata::describe_topic(&proxy, &t).await?),
            Op::Partitions(t) => to_json(&metadata::partitions(&proxy, &t).await?),
            Op::Partition(t, p) => to_json(&metadata::partition(&proxy, &t, p).await?),
            Op::Brokers => to_json(&serde_json::json!({
                "brokers": metadata::brokers(&proxy).await?
            })),
            Op::Produce(t) => produce_request(&proxy, &t, None, &headers, body).await,
            Op::ProduceToPartition(t, p) => {
                produce_request(&proxy, &t, Some(p), &headers, body).await
            }
        }
    };
    API.answer(&method, path.as_str(), &headers, answer).await
}

async fn produce_request<S, B>(
    proxy: &Arc<EmbeddedRestProxy>,
    topic: &str,
    partition: Option<i32>,
    headers: &HeaderMap,
    body: S,
) -> Answer
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let format = Format::from_content_type(ct).ok_or_else(E::unsupported_media_type)?;
    let bytes = read_body(headers, body, BODY_LIMIT).await?;
    let req = produce::parse_request(&bytes)?;
    to_json(&produce::produce(proxy, topic, partition, format, req).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_confluents_paths() {
        let (get, post, del) = (Method::GET, Method::POST, Method::DELETE);
        assert_eq!(route(&get, "/topics").unwrap(), Op::Topics);
        assert_eq!(route(&get, "/topics/").unwrap(), Op::Topics);
        assert_eq!(
            route(&post, "/topics/org.chicago.cta.weather.v1").unwrap(),
            Op::Produce("org.chicago.cta.weather.v1".into())
        );
        assert_eq!(
            route(&post, "/topics/a%20b/partitions/2").unwrap(),
            Op::ProduceToPartition("a b".into(), 2)
        );
        assert_eq!(route(&get, "/brokers").unwrap(), Op::Brokers);
        assert_eq!(route(&del, "/topics/x").unwrap_err().status, 405);
        assert_eq!(route(&get, "/nope").unwrap_err().status, 404);
        assert_eq!(
            route(&get, "/topics/x/partitions/zero")
                .unwrap_err()
                .error_code,
            40402
        );
    }

    #[test]
    fn answers_in_the_v2_media_type_unless_asked_otherwise() {
        assert_eq!(API.negotiate(None), Some(VND_V2));
        assert_eq!(
            API.negotiate(Some(
                "application/vnd.kafka.v2+json, application/vnd.kafka+json, application/json"
            )),
            Some(VND_V2)
        );
        assert_eq!(
            API.negotiate(Some("application/json")),
            Some("application/json")
        );
        assert_eq!(API.negotiate(Some("text/html")), None);
    }
}
