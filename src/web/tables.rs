//! Table debug endpoints (Faust's `/table` views): list tables, page through one, read a
//! key. Every answer is JSON; a bad key is a 400, an unknown table or key a 404.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::codec::Codec;
use crate::http::percent_decode;
use crate::table::TableRuntime;
use crate::worker::WorkerState;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<usize>,
    after: Option<String>,
}

pub fn routes(
    shared: Arc<WorkerState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let with = warp::any().map(move || shared.clone());
    let list = warp::path!("tables")
        .and(warp::get())
        .and(with.clone())
        .map(|s: Arc<WorkerState>| warp::reply::json(&list(&s)).into_response());
    let page = warp::path!("tables" / String)
        .and(warp::get())
        .and(warp::query::<PageQuery>())
        .and(with.clone())
        .and_then(
            |name: String, q: PageQuery, s: Arc<WorkerState>| async move {
                Ok::<_, Infallible>(page(&s, &percent_decode(&name), q).await)
            },
        );
    let key = warp::path!("tables" / String / String)
        .and(warp::get())
        .and(with)
        .and_then(
            |name: String, key: String, s: Arc<WorkerState>| async move {
                Ok::<_, Infallible>(lookup(&s, &percent_decode(&name), &percent_decode(&key)).await)
            },
        );
    list.or(page).unify().or(key).unify()
}

fn error(code: StatusCode, message: String) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&json!({ "error": message, "status": code.as_u16() })),
        code,
    )
    .into_response()
}

fn list(s: &WorkerState) -> Value {
    let tables: Vec<Value> = s
        .tables
        .all()
        .map(|t| {
            json!({
                "name": &*t.name,
                "global": t.is_global(),
                "agent": t.settings.agent,
                "partitions": t.partitions,
                "changelog": t.changelog,
                "source_topic": t.is_global().then(|| t.source_topic.clone()),
                "key_type": t.decl.key_type,
                "value_type": t.decl.value_type,
                "key_codec": t.settings.key_codec.to_string(),
                "value_codec": t.settings.value_codec.to_string(),
                "held": t.info(),
                "store_operations": t.meter.reading(),
                "window": t.window_info(),
            })
        })
        .collect();
    json!({
        "tables": tables,
        "store_memory": {
            "backend": s.settings.store.backend,
            "block_cache_bytes": s.tables.stores.rocks.block_cache_bytes,
            "write_buffer_bytes": s.tables.stores.rocks.write_buffer_bytes,
            "in_use_bytes": s.tables.memory_usage(),
        }
    })
}

/// An error answer, boxed: responses are large and travel in `Result`s.
type Refusal = Box<warp::reply::Response>;

fn table<'a>(s: &'a WorkerState, name: &str) -> Result<&'a Arc<TableRuntime>, Refusal> {
    s.tables.get(name).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no table named '{name}'"),
        ))
    })
}

/// A key from its text form to the bytes the table stores.
async fn key_bytes(t: &TableRuntime, text: &str) -> Result<(Value, Vec<u8>), Refusal> {
    let key = t
        .decl
        .key_from_text(text)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, e)))?;
    let bytes =
        match (&t.key_codec, &key) {
            (Codec::Raw, Value::String(s)) => s.clone().into_bytes(),
            _ => t.key_codec.encode(&key).await.map_err(|e| {
                Box::new(error(StatusCode::BAD_REQUEST, format!("key {text}: {e}")))
            })?,
        };
    Ok((key, bytes))
}

fn show(codec: &Codec, bytes: &[u8]) -> Value {
    match codec {
        Codec::Json => serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())),
        _ => Value::String(String::from_utf8_lossy(bytes).into_owned()),
    }
}

async fn page(s: &WorkerState, name: &str, q: PageQuery) -> warp::reply::Response {
    let t = match table(s, name) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {MAX_LIMIT}"),
        );
    }
    let after = match &q.after {
        Some(a) => match key_bytes(t, a).await {
            Ok((_, b)) => Some(b),
            Err(r) => return *r,
        },
        None => None,
    };
    if t.window.is_some() {
        return window_page(t, name, after.as_deref(), limit);
    }
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for part in t.held() {
        match part.scan(after.as_deref(), limit) {
            Ok(entries) => merged.extend(entries),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    let entries: Vec<(Vec<u8>, Vec<u8>)> = merged.into_iter().take(limit).collect();
    let next = (entries.len() == limit)
        .then(|| {
            entries
                .last()
                .map(|(k, _)| key_text(&show(&t.key_codec, k)))
        })
        .flatten();
    let rows: Vec<Value> = entries
        .iter()
        .map(|(k, v)| json!({ "key": show(&t.key_codec, k), "value": show(&t.value_codec, v) }))
        .collect();
    warp::reply::json(&json!({
        "table": name,
        "count": rows.len(),
        "entries": rows,
        "next_after": next,
    }))
    .into_response()
}

/// A page of a windowed table: `limit` keys, each with its windows.
fn window_page(
    t: &TableRuntime,
    name: &str,
    after: Option<&[u8]>,
    limit: usize,
) -> warp::reply::Response {
    let page = match t.window_page(after, limit) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let next = (page.len() == limit)
        .then(|| page.last().map(|(k, _)| key_text(&show(&t.key_codec, k))))
        .flatten();
    let rows: Vec<Value> = page
        .iter()
        .map(|(k, windows)| {
            json!({
                "key": show(&t.key_codec, k),
                "windows": windows_json(t, windows),
            })
        })
        .collect();
    warp::reply::json(&json!({
        "table": name,
        "count": rows.len(),
        "entries": rows,
        "next_after": next,
    }))
    .into_response()
}

fn windows_json(t: &TableRuntime, windows: &[crate::table::windowed::RawWindow]) -> Vec<Value> {
    windows
        .iter()
        .map(|w| json!({ "start": w.start, "end": w.end, "value": show(&t.value_codec, &w.value) }))
        .collect()
}

/// The text form of a key for `?after=`: strings as they are, other values as JSON. A
/// string that is itself a JSON string literal (`"x"`, quotes included) is given as JSON,
/// or `?after=` would read it back without its quotes.
fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) if serde_json::from_str::<String>(s).is_err() => s.clone(),
        other => other.to_string(),
    }
}

async fn lookup(s: &WorkerState, name: &str, text: &str) -> warp::reply::Response {
    let t = match table(s, name) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let (key, bytes) = match key_bytes(t, text).await {
        Ok(k) => k,
        Err(r) => return *r,
    };
    if t.window.is_some() {
        return match t.windows_of(&bytes) {
            Ok(Some((partition, windows))) if !windows.is_empty() => warp::reply::json(&json!({
                "table": name,
                "partition": partition,
                "key": key,
                "windows": windows_json(t, &windows),
            }))
            .into_response(),
            Ok(_) => error(
                StatusCode::NOT_FOUND,
                format!("key {key} has no windows in table {name} on this worker"),
            ),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    for part in t.held() {
        match part.get(&bytes) {
            Ok(Some(v)) => {
                return warp::reply::json(&json!({
                    "table": name,
                    "partition": part.partition,
                    "key": key,
                    "value": show(&t.value_codec, &v),
                }))
                .into_response()
            }
            Ok(None) => {}
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    error(
        StatusCode::NOT_FOUND,
        format!(
            "key {key} is not in table {name} (partitions held here: {:?})",
            t.held().iter().map(|p| p.partition).collect::<Vec<_>>()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_texts_read_back_as_the_same_key() {
        assert_eq!(key_text(&json!("plain")), "plain");
        assert_eq!(key_text(&json!(42)), "42");
        let quoted = json!("\"quoted\"");
        let text = key_text(&quoted);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), quoted);
    }
}
