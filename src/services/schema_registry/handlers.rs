//! The REST API (spec §1.2): content negotiation, routing, and one function per endpoint.

use std::sync::Arc;

use apache_avro::Schema;
use futures::Stream;
use serde::Serialize;
use serde_json::{json, Value};
use warp::http::header::CONTENT_TYPE;
use warp::http::{HeaderMap, Method, Response};
use warp::path::FullPath;
use warp::Buf;

use super::avro::{self, Level};
use super::errors::ApiError as E;
use super::store::Record;
use super::EmbeddedRegistry;
use crate::http::{self, path_segments, BODY_LIMIT};
use crate::services::confluent_api::{to_json, Answer, ConfluentApi};

pub const VND_V1: &str = "application/vnd.schemaregistry.v1+json";
const VND: &str = "application/vnd.schemaregistry+json";
const JSON: &str = "application/json";

/// The API: the media types it answers in (§1.1.1).
pub const API: ConfluentApi = ConfluentApi {
    name: "schema registry",
    media_types: &[(VND_V1, 1.0), (VND, 0.9), (JSON, 0.5)],
};

/// Whether a request body with this `Content-Type` is accepted (§1.1.1).
pub fn content_type_ok(ct: Option<&str>) -> bool {
    let Some(ct) = ct else { return true };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.is_empty() || [VND_V1, VND, JSON, "application/octet-stream"].contains(&media.as_str())
}

/// A `{version}` path parameter (§1.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionId {
    Latest,
    Number(u32),
}

pub fn parse_version(raw: &str) -> Result<VersionId, E> {
    let t = raw.trim();
    if t.eq_ignore_ascii_case("latest") || t == "-1" {
        return Ok(VersionId::Latest);
    }
    match t.parse::<i64>() {
        Ok(n) if (1..=i32::MAX as i64).contains(&n) => Ok(VersionId::Number(n as u32)),
        _ => Err(E::invalid_version(raw)),
    }
}

/// The resource and operation a request addresses.
#[derive(Debug, PartialEq, Eq)]
enum Op {
    Root,
    SchemaById(u32),
    SchemaTextById(u32),
    SubjectsById(u32),
    VersionsById(u32),
    Types,
    Subjects,
    Register(String),
    Lookup(String),
    DeleteSubject(String),
    ListVersions(String),
    GetVersion(String, String),
    GetVersionSchema(String, String),
    DeleteVersion(String, String),
    Compat(String, String),
    GetConfig,
    PutConfig,
    DeleteConfig,
    GetSubjectConfig(String),
    PutSubjectConfig(String),
    DeleteSubjectConfig(String),
    GetMode,
}

impl Op {
    fn has_body(&self) -> bool {
        matches!(
            self,
            Op::Register(_)
                | Op::Lookup(_)
                | Op::Compat(..)
                | Op::PutConfig
                | Op::PutSubjectConfig(_)
        )
    }
}

fn route(method: &Method, segs: &[String]) -> Result<Op, E> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method;
    let (get, post, put, del) = (
        m == Method::GET,
        m == Method::POST,
        m == Method::PUT,
        m == Method::DELETE,
    );
    let id = |x: &str| x.parse::<u32>().map_err(|_| E::not_found_path());
    let op = match s.as_slice() {
        [] if get || post => Op::Root,
        [] => return Err(E::method_not_allowed()),
        ["schemas", "types"] if get => Op::Types,
        ["schemas", "ids", i] if get => Op::SchemaById(id(i)?),
        ["schemas", "ids", i, "schema"] if get => Op::SchemaTextById(id(i)?),
        ["schemas", "ids", i, "subjects"] if get => Op::SubjectsById(id(i)?),
        ["schemas", "ids", i, "versions"] if get => Op::VersionsById(id(i)?),
        ["schemas", "types"]
        | ["schemas", "ids", _]
        | ["schemas", "ids", _, "schema" | "subjects" | "versions"] => {
            return Err(E::method_not_allowed())
        }
        ["subjects"] if get => Op::Subjects,
        ["subjects", sub] if post => Op::Lookup(sub.to_string()),
        ["subjects", sub] if del => Op::DeleteSubject(sub.to_string()),
        ["subjects", sub, "versions"] if get => Op::ListVersions(sub.to_string()),
        ["subjects", sub, "versions"] if post => Op::Register(sub.to_string()),
        ["subjects", sub, "versions", v] if get => Op::GetVersion(sub.to_string(), v.to_string()),
        ["subjects", sub, "versions", v] if del => {
            Op::DeleteVersion(sub.to_string(), v.to_string())
        }
        ["subjects", sub, "versions", v, "schema"] if get => {
            Op::GetVersionSchema(sub.to_string(), v.to_string())
        }
        ["subjects"]
        | ["subjects", _]
        | ["subjects", _, "versions"]
        | ["subjects", _, "versions", _]
        | ["subjects", _, "versions", _, "schema"] => return Err(E::method_not_allowed()),
        ["compatibility", "subjects", sub, "versions", v] if post => {
            Op::Compat(sub.to_string(), v.to_string())
        }
        ["compatibility", "subjects", _, "versions", _] => return Err(E::method_not_allowed()),
        ["config"] if get => Op::GetConfig,
        ["config"] if put => Op::PutConfig,
        ["config"] if del => Op::DeleteConfig,
        ["config", sub] if get => Op::GetSubjectConfig(sub.to_string()),
        ["config", sub] if put => Op::PutSubjectConfig(sub.to_string()),
        ["config", sub] if del => Op::DeleteSubjectConfig(sub.to_string()),
        ["config"] | ["config", _] => return Err(E::method_not_allowed()),
        ["mode"] if get => Op::GetMode,
        ["mode"] => return Err(E::method_not_allowed()),
        _ => return Err(E::not_found_path()),
    };
    Ok(op)
}

fn query_flag(query: &str, name: &str) -> bool {
    query.split('&').any(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k == name && v.eq_ignore_ascii_case("true")
    })
}

async fn read_body<S, B>(headers: &HeaderMap, body: S) -> Result<Value, E>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !content_type_ok(ct) {
        return Err(E::unsupported_media_type());
    }
    let buf = http::read_body(headers, body, BODY_LIMIT).await?;
    serde_json::from_slice(&buf).map_err(E::bad_json)
}

/// Entry point of every request.
pub async fn handle<S, B>(
    reg: Arc<EmbeddedRegistry>,
    method: Method,
    path: FullPath,
    headers: HeaderMap,
    query: String,
    body: S,
) -> Response<String>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let answer = async {
        let op = route(&method, &path_segments(path.as_str()))?;
        let body = if op.has_body() {
            Some(read_body(&headers, body).await?)
        } else {
            None
        };
        dispatch(&reg, op, body, &query).await
    };
    API.answer(&method, path.as_str(), &headers, answer).await
}

#[derive(Serialize)]
struct SubjectVersion<'a> {
    subject: &'a str,
    version: u32,
    id: u32,
    schema: &'a str,
}

/// The `schema` of a register / lookup / compatibility body, validated (§1.2).
fn schema_text<'a>(body: &'a Value, subject: &str) -> Result<&'a str, E> {
    let Some(obj) = body.as_object() else {
        return Err(E::unprocessable("The request body must be a JSON object"));
    };
    if let Some(t) = obj.get("schemaType").filter(|t| !t.is_null()) {
        let t = t.as_str().unwrap_or_default();
        if !t.eq_ignore_ascii_case("AVRO") {
            return Err(E::rejected_schema(format!("Invalid schema type {t}")));
        }
    }
    if obj
        .get("references")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        return Err(E::rejected_schema("Schema references are not supported"));
    }
    if obj.get("id").is_some_and(|v| !v.is_null())
        || obj.get("version").is_some_and(|v| !v.is_null())
    {
        return Err(E::not_permitted(format!(
            "Subject {subject} is not in import mode"
        )));
    }
    match obj.get("schema") {
        None | Some(Value::Null) => Err(E::unprocessable("schema may not be empty")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(E::unprocessable("schema must be a string")),
    }
}

fn level_of(body: &Value) -> Result<Level, E> {
    body.get("compatibility")
        .and_then(Value::as_str)
        .and_then(Level::parse)
        .ok_or_else(E::invalid_level)
}

/// Resolves `{version}` of a subject to (version, id) among its non-deleted versions.
fn resolve(reg: &EmbeddedRegistry, subject: &str, raw: &str) -> Result<(u32, u32), E> {
    let v = parse_version(raw)?;
    let st = reg.read();
    let live = st.live_versions(subject);
    if live.is_empty() {
        return Err(E::subject_not_found(subject));
    }
    match v {
        VersionId::Latest => Ok(*live.last().expect("non-empty")),
        VersionId::Number(n) => live
            .iter()
            .find(|(v, _)| *v == n)
            .copied()
            .ok_or_else(|| E::version_not_found(n)),
    }
}

fn parse_stored(text: &str) -> Option<Schema> {
    Schema::parse_str(text).ok()
}

async fn dispatch(reg: &EmbeddedRegistry, op: Op, body: Option<Value>, query: &str) -> Answer {
    let body = body.unwrap_or(Value::Null);
    match op {
        Op::Root => Ok("{}".to_string()),
        Op::Types => Ok(r#"["AVRO"]"#.to_string()),
        Op::GetMode => Ok(r#"{"mode":"READWRITE"}"#.to_string()),
        Op::SchemaById(id) => {
            let st = reg.read();
            let s = st
                .schema_by_id(id)
                .ok_or_else(|| E::schema_id_not_found(id))?;
            to_json(&json!({ "schema": s }))
        }
        Op::SchemaTextById(id) => {
            let st = reg.read();
            st.schema_by_id(id)
                .map(str::to_string)
                .ok_or_else(|| E::schema_id_not_found(id))
        }
        Op::SubjectsById(id) | Op::VersionsById(id) => {
            let st = reg.read();
            if st.schema_by_id(id).is_none() {
                return Err(E::schema_id_not_found(id));
            }
            let uses = st.usages(id);
            if matches!(op, Op::SubjectsById(_)) {
                let mut subjects: Vec<String> = uses.into_iter().map(|(s, _)| s).collect();
                subjects.dedup();
                to_json(&subjects)
            } else {
                let list: Vec<Value> = uses
                    .into_iter()
                    .map(|(s, v)| json!({"subject": s, "version": v}))
                    .collect();
                to_json(&list)
            }
        }
        Op::Subjects => to_json(&reg.read().live_subjects()),
        Op::ListVersions(subject) => {
            let live = reg.read().live_versions(&subject);
            if live.is_empty() {
                return Err(E::subject_not_found(&subject));
            }
            to_json(&live.iter().map(|(v, _)| *v).collect::<Vec<_>>())
        }
        Op::GetVersion(subject, raw) => {
            let (version, id) = resolve(reg, &subject, &raw)?;
            let st = reg.read();
            let schema = st.schema_by_id(id).ok_or_else(E::internal)?;
            to_json(&SubjectVersion {
                subject: &subject,
                version,
                id,
                schema,
            })
        }
        Op::GetVersionSchema(subject, raw) => {
            let (_, id) = resolve(reg, &subject, &raw)?;
            let st = reg.read();
            st.schema_by_id(id)
                .map(str::to_string)
                .ok_or_else(E::internal)
        }
        Op::Lookup(subject) => {
            let text = schema_text(&body, &subject)?;
            if reg.read().live_versions(&subject).is_empty() {
                return Err(E::subject_not_found(&subject));
            }
            let (_, canonical) = avro::canonicalize(text)?;
            let st = reg.read();
            let id = st.id_of(&canonical).ok_or_else(E::schema_not_found)?;
            let (version, _) = st
                .live_versions(&subject)
                .into_iter()
                .find(|(_, i)| *i == id)
                .ok_or_else(E::schema_not_found)?;
            to_json(&SubjectVersion {
                subject: &subject,
                version,
                id,
                schema: &canonical,
            })
        }
        Op::Register(subject) => register(reg, &subject, &body).await,
        Op::Compat(subject, raw) => {
            let text = schema_text(&body, &subject)?;
            let (candidate, _) = avro::canonicalize(text)?;
            let v = parse_version(&raw)?;
            let st = reg.read();
            if st.live_versions(&subject).is_empty() && v == VersionId::Latest {
                return to_json(&json!({"is_compatible": true}));
            }
            drop(st);
            let (_, id) = resolve(reg, &subject, &raw)?;
            let st = reg.read();
            let old = st
                .schema_by_id(id)
                .and_then(parse_stored)
                .ok_or_else(E::internal)?;
            let level = st.effective_level(&subject);
            // a single version: the transitive levels reduce to their plain form
            let problems = avro::check(level, &candidate, &[old]);
            if query_flag(query, "verbose") {
                to_json(&json!({"is_compatible": problems.is_empty(), "messages": problems}))
            } else {
                to_json(&json!({"is_compatible": problems.is_empty()}))
            }
        }
        Op::DeleteVersion(subject, raw) => {
            let _w = reg.write_lock.lock().await;
            let v = parse_version(&raw)?;
            let record = {
                let st = reg.read();
                if st.live_versions(&subject).is_empty() {
                    return Err(E::subject_not_found(&subject));
                }
                let (version, id) = match v {
                    VersionId::Latest => *st.live_versions(&subject).last().expect("non-empty"),
                    VersionId::Number(n) => match st.version(&subject, n) {
                        None => return Err(E::version_not_found(n)),
                        Some(e) if e.deleted => return Err(E::version_soft_deleted(&subject, n)),
                        Some(e) => (n, e.id),
                    },
                };
                let schema = st.schema_by_id(id).ok_or_else(E::internal)?;
                Record::schema(&subject, version, id, schema, true)
            };
            reg.persist(&record).await?;
            let version = parse_version(&raw).ok().and_then(|v| match v {
                VersionId::Number(n) => Some(n),
                VersionId::Latest => None,
            });
            match version {
                Some(n) => Ok(n.to_string()),
                None => {
                    // the version just deleted is in the record's key
                    let key: Value =
                        serde_json::from_str(&record.key).map_err(|_| E::internal())?;
                    Ok(key["version"].to_string())
                }
            }
        }
        Op::DeleteSubject(subject) => {
            let _w = reg.write_lock.lock().await;
            let (live, has_config) = {
                let st = reg.read();
                let live = st.live_versions(&subject);
                if live.is_empty() {
                    return Err(if st.subject_known(&subject) {
                        E::subject_soft_deleted(&subject)
                    } else {
                        E::subject_not_found(&subject)
                    });
                }
                (live, st.subject_level(&subject).is_some())
            };
            let upto = live.last().expect("non-empty").0;
            reg.persist(&Record::delete_subject(&subject, upto)).await?;
            if has_config {
                reg.persist(&Record::config(Some(&subject), None)).await?;
            }
            to_json(&live.iter().map(|(v, _)| *v).collect::<Vec<_>>())
        }
        Op::GetConfig => {
            to_json(&json!({"compatibilityLevel": reg.read().global_level().as_str()}))
        }
        Op::PutConfig => {
            let level = level_of(&body)?;
            let _w = reg.write_lock.lock().await;
            reg.persist(&Record::config(None, Some(level))).await?;
            to_json(&json!({"compatibility": level.as_str()}))
        }
        Op::DeleteConfig => {
            let _w = reg.write_lock.lock().await;
            let old = reg.read().global_level();
            reg.persist(&Record::config(None, None)).await?;
            to_json(&json!({"compatibilityLevel": old.as_str()}))
        }
        Op::GetSubjectConfig(subject) => {
            let st = reg.read();
            let level = match st.subject_level(&subject) {
                Some(l) => l,
                None if query_flag(query, "defaultToGlobal") => st.global_level(),
                None => return Err(E::no_subject_config(&subject)),
            };
            to_json(&json!({"compatibilityLevel": level.as_str()}))
        }
        Op::PutSubjectConfig(subject) => {
            let level = level_of(&body)?;
            let _w = reg.write_lock.lock().await;
            reg.persist(&Record::config(Some(&subject), Some(level)))
                .await?;
            to_json(&json!({"compatibility": level.as_str()}))
        }
        Op::DeleteSubjectConfig(subject) => {
            let _w = reg.write_lock.lock().await;
            let old = {
                let st = reg.read();
                match st.subject_level(&subject) {
                    Some(l) => l,
                    None if !st.subject_known(&subject) => {
                        return Err(E::subject_not_found(&subject))
                    }
                    None => return Err(E::no_subject_config(&subject)),
                }
            };
            reg.persist(&Record::config(Some(&subject), None)).await?;
            to_json(&json!({"compatibilityLevel": old.as_str()}))
        }
    }
}

/// `POST /subjects/{subject}/versions` (§1.2, §1.4).
async fn register(reg: &EmbeddedRegistry, subject: &str, body: &Value) -> Answer {
    let text = schema_text(body, subject)?;
    let (candidate, canonical) = avro::canonicalize(text)?;
    let _w = reg.write_lock.lock().await;
    let (id, record) = {
        let st = reg.read();
        let live = st.live_versions(subject);
        let existing_id = st.id_of(&canonical);
        if let Some(id) = existing_id {
            if live.iter().any(|(_, i)| *i == id) {
                return to_json(&json!({ "id": id }));
            }
        }
        let level = st.effective_level(subject);
        let previous: Vec<Schema> = live
            .iter()
            .filter_map(|(_, i)| st.schema_by_id(*i).and_then(parse_stored))
            .collect();
        let problems = avro::check(level, &candidate, &previous);
        if !problems.is_empty() {
            return Err(E::incompatible(subject, &problems.join("; ")));
        }
        let id = existing_id.unwrap_or_else(|| st.next_id());
        let version = st.max_version(subject) + 1;
        (id, Record::schema(subject, version, id, &canonical, false))
    };
    reg.persist(&record).await?;
    to_json(&json!({ "id": id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        assert_eq!(API.negotiate(None), Some(VND_V1));
        assert_eq!(API.negotiate(Some("*/*")), Some(VND_V1));
        assert_eq!(API.negotiate(Some("application/json")), Some(JSON));
        assert_eq!(
            API.negotiate(Some("application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json")),
            Some(VND_V1)
        );
        assert_eq!(
            API.negotiate(Some(
                "application/vnd.schemaregistry.v1+json; q=0.1, application/json; q=0.9"
            )),
            Some(JSON)
        );
        assert_eq!(API.negotiate(Some("text/html")), None);
        assert_eq!(API.negotiate(Some("application/json; q=0")), None);
    }

    #[test]
    fn content_types() {
        assert!(content_type_ok(None));
        assert!(content_type_ok(Some(
            "application/vnd.schemaregistry.v1+json"
        )));
        assert!(content_type_ok(Some("application/json; charset=utf-8")));
        assert!(content_type_ok(Some("application/octet-stream")));
        assert!(!content_type_ok(Some("text/plain")));
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version(" Latest "), Ok(VersionId::Latest));
        assert_eq!(parse_version("-1"), Ok(VersionId::Latest));
        assert_eq!(parse_version("3"), Ok(VersionId::Number(3)));
        assert_eq!(
            parse_version("2147483647"),
            Ok(VersionId::Number(i32::MAX as u32))
        );
        for bad in ["0", "abc", "-2", "2147483648", ""] {
            assert_eq!(parse_version(bad).unwrap_err().error_code, 42202, "{bad}");
        }
    }

    #[test]
    fn paths_and_routes() {
        let r = |m: Method, p: &str| route(&m, &path_segments(p));
        assert_eq!(r(Method::GET, "/"), Ok(Op::Root));
        assert_eq!(
            r(Method::POST, "/subjects/a%2Db/versions"),
            Ok(Op::Register("a-b".into()))
        );
        assert_eq!(r(Method::GET, "/schemas/ids/7"), Ok(Op::SchemaById(7)));
        assert_eq!(r(Method::GET, "/schemas/ids/x").unwrap_err().status, 404);
        assert_eq!(r(Method::PUT, "/subjects").unwrap_err().status, 405);
        assert_eq!(r(Method::GET, "/nope").unwrap_err().error_code, 404);
        assert_eq!(
            r(Method::POST, "/compatibility/subjects/s/versions/latest"),
            Ok(Op::Compat("s".into(), "latest".into()))
        );
    }

    #[test]
    fn register_body_validation() {
        assert_eq!(schema_text(&json!({}), "s").unwrap_err().error_code, 422);
        assert_eq!(schema_text(&json!([1]), "s").unwrap_err().status, 422);
        assert_eq!(
            schema_text(&json!({"schema":"\"int\"","schemaType":"PROTOBUF"}), "s")
                .unwrap_err()
                .error_code,
            42201
        );
        assert_eq!(
            schema_text(&json!({"schema":"\"int\"","id":3}), "s")
                .unwrap_err()
                .error_code,
            42205
        );
        assert_eq!(
            schema_text(&json!({"schema":"\"int\""}), "s"),
            Ok("\"int\"")
        );
    }
}
