//! The in-memory index rebuilt from (and kept in step with) the `_schemas` topic (§1.5), and the
//! records written to that topic.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::avro::Level;

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    pub id: u32,
    pub deleted: bool,
}

/// A record of the `_schemas` topic: key JSON and value JSON (`None` = tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub value: Option<String>,
}

impl Record {
    pub fn schema(subject: &str, version: u32, id: u32, schema: &str, deleted: bool) -> Self {
        Record {
            key: format!(
                "{{\"keytype\":\"SCHEMA\",\"subject\":{},\"version\":{version},\"magic\":1}}",
                json!(subject)
            ),
            value: Some(format!(
                "{{\"subject\":{},\"version\":{version},\"id\":{id},\"schema\":{},\"deleted\":{deleted}}}",
                json!(subject),
                json!(schema)
            )),
        }
    }

    /// `subject` `None` = the global level; `level` `None` = tombstone (override removed).
    pub fn config(subject: Option<&str>, level: Option<Level>) -> Self {
        Record {
            key: format!(
                "{{\"keytype\":\"CONFIG\",\"subject\":{},\"magic\":0}}",
                json!(subject)
            ),
            value: level.map(|l| json!({"compatibilityLevel": l.as_str()}).to_string()),
        }
    }

    pub fn delete_subject(subject: &str, version: u32) -> Self {
        Record {
            key: format!(
                "{{\"keytype\":\"DELETE_SUBJECT\",\"subject\":{},\"magic\":0}}",
                json!(subject)
            ),
            value: Some(format!(
                "{{\"subject\":{},\"version\":{version}}}",
                json!(subject)
            )),
        }
    }
}

/// The registry's state.
#[derive(Debug, Default)]
pub struct Store {
    /// Global id → canonical text.
    schemas: BTreeMap<u32, String>,
    /// Canonical text → global id.
    ids: HashMap<String, u32>,
    /// Subject → version → entry (deleted ones kept: version numbers are never reused).
    subjects: BTreeMap<String, BTreeMap<u32, VersionEntry>>,
    global_level: Option<Level>,
    subject_levels: HashMap<String, Level>,
    max_id: u32,
}

impl Store {
    /// Applies one record of the topic (replay or live write). Unknown or malformed records are
    /// skipped with a warning.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Ok(k) = serde_json::from_slice::<Value>(key) else {
            tracing::warn!("schema registry: skipping a record with a non-JSON key");
            return;
        };
        let v = match value.map(serde_json::from_slice::<Value>) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => {
                tracing::warn!(key = %k, "schema registry: skipping a record with a non-JSON value");
                return;
            }
        };
        let subject = k.get("subject").and_then(Value::as_str).map(str::to_string);
        match k.get("keytype").and_then(Value::as_str) {
            Some("SCHEMA") => {
                let (Some(subject), Some(version)) =
                    (subject, k.get("version").and_then(Value::as_u64))
                else {
                    return;
                };
                let version = version as u32;
                let Some(v) = v else {
                    // hard delete
                    if let Some(vs) = self.subjects.get_mut(&subject) {
                        vs.remove(&version);
                    }
                    return;
                };
                let (Some(id), Some(schema)) = (
                    v.get("id").and_then(Value::as_u64),
                    v.get("schema").and_then(Value::as_str),
                ) else {
                    return;
                };
                let id = id as u32;
                let deleted = v.get("deleted").and_then(Value::as_bool).unwrap_or(false);
                self.schemas.entry(id).or_insert_with(|| schema.to_string());
                self.ids.entry(schema.to_string()).or_insert(id);
                self.max_id = self.max_id.max(id);
                self.subjects
                    .entry(subject)
                    .or_default()
                    .insert(version, VersionEntry { id, deleted });
            }
            Some("CONFIG") => {
                let level = v
                    .as_ref()
                    .and_then(|v| v.get("compatibilityLevel"))
                    .and_then(Value::as_str)
                    .and_then(Level::parse);
                match (subject, level) {
                    (None, l) => self.global_level = l,
                    (Some(s), Some(l)) => {
                        self.subject_levels.insert(s, l);
                    }
                    (Some(s), None) => {
                        self.subject_levels.remove(&s);
                    }
                }
            }
            Some("DELETE_SUBJECT") => {
                let (Some(subject), Some(upto)) = (
                    subject,
                    v.as_ref()
                        .and_then(|v| v.get("version"))
                        .and_then(Value::as_u64),
                ) else {
                    return;
                };
                if let Some(vs) = self.subjects.get_mut(&subject) {
                    for (_, e) in vs.range_mut(..=(upto as u32)) {
                        e.deleted = true;
                    }
                }
            }
            _ => {}
        }
    }

    pub fn apply_record(&mut self, r: &Record) {
        self.apply(r.key.as_bytes(), r.value.as_deref().map(str::as_bytes));
    }

    pub fn next_id(&self) -> u32 {
        self.max_id + 1
    }

    pub fn schema_by_id(&self, id: u32) -> Option<&str> {
        self.schemas.get(&id).map(String::as_str)
    }

    pub fn id_of(&self, canonical: &str) -> Option<u32> {
        self.ids.get(canonical).copied()
    }

    /// Subjects with at least one non-deleted version.
    pub fn live_subjects(&self) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, vs)| vs.values().any(|e| !e.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Whether the subject was ever written (deleted versions included).
    pub fn subject_known(&self, subject: &str) -> bool {
        self.subjects.get(subject).is_some_and(|vs| !vs.is_empty())
    }

    /// Non-deleted versions of `subject` (ascending) with their ids.
    pub fn live_versions(&self, subject: &str) -> Vec<(u32, u32)> {
        self.subjects
            .get(subject)
            .map(|vs| {
                vs.iter()
                    .filter(|(_, e)| !e.deleted)
                    .map(|(v, e)| (*v, e.id))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn version(&self, subject: &str, version: u32) -> Option<&VersionEntry> {
        self.subjects.get(subject).and_then(|vs| vs.get(&version))
    }

    /// Highest version ever written to `subject` (0 if none).
    pub fn max_version(&self, subject: &str) -> u32 {
        self.subjects
            .get(subject)
            .and_then(|vs| vs.keys().next_back().copied())
            .unwrap_or(0)
    }

    /// (subject, version) pairs, non-deleted, that use `id`.
    pub fn usages(&self, id: u32) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for (s, vs) in &self.subjects {
            for (v, e) in vs {
                if e.id == id && !e.deleted {
                    out.push((s.clone(), *v));
                }
            }
        }
        out
    }

    pub fn global_level(&self) -> Level {
        self.global_level.unwrap_or(Level::DEFAULT)
    }

    pub fn subject_level(&self, subject: &str) -> Option<Level> {
        self.subject_levels.get(subject).copied()
    }

    pub fn effective_level(&self, subject: &str) -> Level {
        self.subject_level(subject)
            .unwrap_or_else(|| self.global_level())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_record_shapes_follow_the_spec() {
        let r = Record::schema("t-value", 1, 7, "\"string\"", false);
        assert_eq!(
            r.key,
            r#"{"keytype":"SCHEMA","subject":"t-value","version":1,"magic":1}"#
        );
        assert_eq!(
            r.value.as_deref().unwrap(),
            r#"{"subject":"t-value","version":1,"id":7,"schema":"\"string\"","deleted":false}"#
        );
        let c = Record::config(None, Some(Level::Full));
        assert_eq!(c.key, r#"{"keytype":"CONFIG","subject":null,"magic":0}"#);
        assert_eq!(
            c.value.as_deref().unwrap(),
            r#"{"compatibilityLevel":"FULL"}"#
        );
        assert_eq!(Record::config(Some("s"), None).value, None);
    }

    #[test]
    fn replay_rebuilds_ids_versions_levels_and_deletes() {
        let mut s = Store::default();
        s.apply_record(&Record::schema("a", 1, 1, "\"int\"", false));
        s.apply_record(&Record::schema("a", 2, 3, "\"long\"", false));
        s.apply_record(&Record::schema("b", 1, 1, "\"int\"", false));
        s.apply_record(&Record::config(None, Some(Level::None)));
        s.apply_record(&Record::config(Some("b"), Some(Level::Full)));
        assert_eq!(s.next_id(), 4);
        assert_eq!(s.live_versions("a"), vec![(1, 1), (2, 3)]);
        assert_eq!(s.id_of("\"long\""), Some(3));
        assert_eq!(s.schema_by_id(1), Some("\"int\""));
        assert_eq!(s.usages(1), vec![("a".into(), 1), ("b".into(), 1)]);
        assert_eq!(s.global_level(), Level::None);
        assert_eq!(s.effective_level("b"), Level::Full);
        assert_eq!(s.effective_level("a"), Level::None);

        s.apply_record(&Record::schema("a", 1, 1, "\"int\"", true));
        assert_eq!(s.live_versions("a"), vec![(2, 3)]);
        s.apply_record(&Record::delete_subject("a", 2));
        assert!(s.live_versions("a").is_empty());
        assert_eq!(s.max_version("a"), 2);
        assert!(s.subject_known("a"));
        assert_eq!(s.live_subjects(), vec!["b".to_string()]);
        // deleted schemas stay resolvable by id
        assert_eq!(s.schema_by_id(3), Some("\"long\""));
        s.apply_record(&Record::config(Some("b"), None));
        assert_eq!(s.subject_level("b"), None);
        s.apply_record(&Record::config(None, None));
        assert_eq!(s.global_level(), Level::Backward);
        // garbage is ignored
        s.apply(b"not json", Some(b"x"));
        s.apply(br#"{"keytype":"NOOP","magic":0}"#, None);
        assert_eq!(s.next_id(), 4);
    }
}
