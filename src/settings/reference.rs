//! The reference of every setting — key, type, default, environment variable, meaning —
//! from which `docs/settings.md` is generated. Defaults are read from the same functions
//! the loader uses, and a test walks the settings' types to check that every key the
//! loader accepts is here and nothing else is, so the reference cannot drift from the code.

use std::fmt::Write as _;

use super::ENV_PREFIX;

/// One setting. `key` is a dotted path; `<name>` stands for a name the user chooses
/// (an agent, a table, a topic, a connector).
#[derive(Debug, Clone)]
pub struct SettingDoc {
    pub key: &'static str,
    pub kind: &'static str,
    pub default: String,
    pub meaning: &'static str,
    /// How the environment sets it, where that is not simply `env_var(key)`.
    pub env_note: Option<&'static str>,
}

impl SettingDoc {
    fn env(mut self, note: &'static str) -> Self {
        self.env_note = Some(note);
        self
    }
}

fn dur(d: std::time::Duration) -> String {
    format!("`{}`", humantime::format_duration(d))
}

fn lit(v: impl std::fmt::Display) -> String {
    format!("`{v}`")
}

fn text(v: &str) -> String {
    format!("`{v:?}`")
}

/// Every setting, in the order of the settings file's sections.
pub fn reference() -> Vec<SettingDoc> {
    use super::*;
    fn s(
        key: &'static str,
        kind: &'static str,
        default: impl Into<String>,
        meaning: &'static str,
    ) -> SettingDoc {
        SettingDoc {
            key,
            kind,
            default: default.into(),
            meaning,
            env_note: None,
        }
    }
    let web = WebSettings::default();
    let services = ServiceSettings::default();
    let embedded = EmbeddedSettings {
        schemas_topic: default_schemas_topic(),
        ..EmbeddedSettings::default()
    };
    let store = StoreSettings::default();
    let health = HealthSettings::default();
    let topics = TopicDefaults::default();
    vec![
        s("app.id", "string", "— (required)", "application id: prefix of group ids (`<id>-<agent>`), changelog topics (`<id>-<table>-changelog`) and dead-letter topics (`<id>-<agent>-dlq`); not empty"),
        s("app.topic_prefix", "string", text(""), "put before every topic the app reads or writes — sources, sinks, patterns, changelogs, dead letters, the embedded registry's schemas topic — so that tests, benchmarks and a second deployment run in a namespace of their own on one broker; ASCII letters, digits, `.`, `_` and `-`; connector names and configs and ksqlDB statements may use `${app.topic_prefix}` and `${app.id}`"),
        s("app.broker", "string", lit(default_broker()), "Kafka bootstrap servers, `host:port[,host:port]`"),
        s("app.state_dir", "path", lit(default_state_dir().display()), "local state (table stores), relative to the settings file"),
        s("app.processing_guarantee", "`at_least_once` or `exactly_once`", lit(ProcessingGuarantee::default()), "see [exactly-once.md](exactly-once.md)"),
        s("app.commit_interval", "duration", dur(default_commit_interval()), "how often acked offsets are committed (under exactly-once: how often the transaction commits)"),
        s("app.shutdown_timeout", "duration", dur(default_shutdown_timeout()), "how long shutdown waits for the events in hand and the deliveries"),
        s("app.metadata_refresh", "duration", dur(default_metadata_refresh()), "topic metadata refresh: how soon a pattern source sees a new topic (librdkafka's default is five minutes)"),
        s("app.transactional_id", "string", "`<app-id>-<host>-<web port>`", "exactly-once: this worker's transactional id; a restarted worker with the same id fences its predecessor"),
        s("app.startup_timeout", "duration", dur(default_startup_timeout()), "how long the worker waits for the broker at start (and retries an unreachable ksqlDB)"),
        s("app.leader_session_timeout", "duration 1s–30m", dur(default_leader_session_timeout()), "session timeout of the leader election of `on_leader` timers: a leader that dies without leaving is replaced within about this long (plus a heartbeat); the broker's `group.min.session.timeout.ms` (6 s by default) bounds it below"),
        s("web.enabled", "boolean", lit(web.enabled), "run the HTTP server"),
        s("web.bind", "address", lit(web.bind), "where the HTTP server listens"),
        s("web.views", "list of strings", "`[]`", "the app's views to serve, by their `register_view!` names, in this order"),
        s("services.schema_registry", "URL", lit(&services.schema_registry), "Schema Registry of the Avro codec; empty: the embedded one, if it runs"),
        s("services.rest_proxy", "URL", lit(&services.rest_proxy), "REST Proxy agents post to (the CTA weather station); empty: the embedded one"),
        s("services.kafka_connect", "URL", lit(&services.kafka_connect), "Kafka Connect, where the `[connectors]` are declared"),
        s("services.ksqldb", "URL", text(&services.ksqldb), "ksqlDB; when set, the `[ksql]` statements run at start and the `ksql.replaces` agents are disabled"),
        s("services.postgres", "URL", lit(&services.postgres), "the app's database (for reference: the worker does not connect to it; Kafka Connect's connector config carries its own connection)"),
        s("embedded.schema_registry", "address or `\"\"`", text(&embedded.schema_registry), "run the embedded Confluent-compatible Schema Registry on this address"),
        s("embedded.schemas_topic", "string", text(&embedded.schemas_topic), "the compacted topic holding the embedded registry's schemas (ids survive restarts); in the app's namespace"),
        s("embedded.rest_proxy", "address or `\"\"`", text(&embedded.rest_proxy), "run the embedded Confluent v2-compatible REST Proxy on this address"),
        s("kafka.common", "table of strings", "`{}`", "librdkafka properties for every client the worker creates").env("none (property names hold dots)"),
        s("kafka.consumer", "table of strings", "`{}`", "librdkafka properties for consumers, applied after `kafka.common`").env("none (property names hold dots)"),
        s("kafka.producer", "table of strings", "`{}`", "librdkafka properties for producers, applied after `kafka.common`").env("none (property names hold dots)"),
        s("topic_defaults.partitions", "integer", lit(topics.partitions), "partitions of the topics the worker creates"),
        s("topic_defaults.replication", "integer", lit(topics.replication), "replication factor of the topics the worker creates"),
        s("topics.\"<name>\".partitions", "integer ≥ 1", "`topic_defaults.partitions`", "partitions when the worker creates the topic"),
        s("topics.\"<name>\".replication", "integer", "`topic_defaults.replication`", "replication factor when the worker creates the topic"),
        s("topics.\"<name>\".config", "table of strings", "`{}`", "topic configs given at creation (`cleanup.policy`, `retention.ms`, …)").env("`CTA_STREAM_TOPICS__<NAME>__CONFIG__<KEY>` (only keys without dots)"),
        s("topics.\"<name>\".key_codec", "codec", "`raw`", "how `ctx.send` (and `cta-stream send`) encodes keys for the topic"),
        s("topics.\"<name>\".value_codec", "codec", "`json`", "how `ctx.send` (and `cta-stream send`) encodes values for the topic"),
        s("topics.\"<name>\".key_schema", "path", "—", "Avro schema file for the keys; only with `key_codec = \"avro\"`; must exist"),
        s("topics.\"<name>\".value_schema", "path", "—", "Avro schema file for the values; only with `value_codec = \"avro\"`; must exist"),
        s("agents.<name>.function", "string", "the name", "the registered function to run"),
        s("agents.<name>.source.topics", "list of strings", "— (one source required)", "source topics; at least one, none empty"),
        s("agents.<name>.source.pattern", "regex", "— (one source required)", "a regex of topic names; must start with `^` (librdkafka treats only such names as regexes)"),
        s("agents.<name>.source.timer", "duration", "— (one source required)", "a timer source: one `Tick` per interval, above zero"),
        s("agents.<name>.source.channel", "string", "— (one source required)", "an in-memory channel of the worker that other agents send to (`ctx.channel(name)`); one reader per channel; values and keys are JSON; not persisted"),
        s("agents.<name>.source.speedup", "number > 0", "`1`", "divides a timer's interval (`timer = \"5s\"`, `speedup = 60` fires every 83 ms); timers only; the result must stay ≥ 1 ms"),
        s("agents.<name>.source.cron", "crontab expression", "— (one source required)", "a cron source: one `Tick` at each time the expression names — five fields (`\"0 * * * *\"`: minute hour day-of-month month day-of-week), six with seconds first, or an alias (`@hourly`, `@daily`); `L`, `W` and `#` as croner reads them ([agents-and-tables.md](agents-and-tables.md#timers))"),
        s("agents.<name>.source.timezone", "IANA time zone", "`\"UTC\"`", "the zone a `cron` schedule is read in (`\"America/Chicago\"`); cron sources only. Across a DST change a fixed time that does not exist fires at the first time after the gap, one that occurs twice fires once; `*`/step fields fire at each wall-clock match"),
        s("agents.<name>.source.on_leader", "boolean", lit(false), "timer and cron sources: fire on one worker of the app at a time, the leader (elected through the group `<app-id>-__leader`); `Tick.seq` then numbers the firings across workers and restarts; needs `concurrency = 1`"),
        s("agents.<name>.sinks", "list of strings", "`[]`", "topics the agent writes (`ctx.sink(i)`); created at start when missing"),
        s("agents.<name>.codec", "codec", lit(default_codec()), "decoding of the source's values"),
        s("agents.<name>.key_codec", "codec", lit(default_key_codec()), "decoding of the source's keys"),
        s("agents.<name>.concurrency", "integer 1–1024", lit(default_concurrency()), "instances; a partition always goes to the same one"),
        s("agents.<name>.on_error", "`fail`, `skip` or `dead-letter`", lit(ErrorPolicy::default()), "the error policy ([architecture.md](architecture.md#failures))"),
        s("agents.<name>.enabled", "boolean", lit(true), "whether the worker runs the agent"),
        s("agents.<name>.from_beginning", "boolean", lit(true), "where a new consumer group starts: the earliest offset, else the latest"),
        s("agents.<name>.params", "table", "`{}`", "free-form parameters for the function (`ctx.params::<T>()`)").env("`CTA_STREAM_AGENTS__<NAME>__PARAMS__<PARAM>`"),
        s("tables.<name>.agent", "string", "—", "the agent that writes the table; required, except for global tables, which have none"),
        s("tables.<name>.partitions", "integer ≥ 1", "`topic_defaults.partitions`", "must equal the partitions of the agent's source topics (checked at start)"),
        s("tables.<name>.changelog", "string", "`<app-id>-<name>-changelog`", "the compacted changelog topic, created when missing"),
        s("tables.<name>.key_codec", "codec", lit(default_table_codec()), "`json` or `raw`; `avro` only for a global table that follows an Avro topic"),
        s("tables.<name>.value_codec", "codec", lit(default_table_codec()), "`json` or `raw`; `avro` only for a global table that follows an Avro topic"),
        s("tables.<name>.global", "boolean", lit(false), "every worker holds the whole table, read-only"),
        s("tables.<name>.source_topic", "string", "the table's changelog", "the topic a global table follows"),
        s("tables.<name>.mirrors", "string", "—", "a global table (without `source_topic`) that follows the changelog of this other table"),
        s("tables.<name>.window.kind", "`tumbling`, `hopping` or `sliding`", "— (no window)", "makes the table windowed ([agents-and-tables.md](agents-and-tables.md#windowed-tables)); not for global tables"),
        s("tables.<name>.window.size", "duration ≥ 1ms", "— (required)", "the length of a window"),
        s("tables.<name>.window.step", "duration", "— (required for hopping and sliding)", "hopping: how far apart windows start (≤ size); sliding: the resolution, a divisor of the size (`\"1ms\"`: exact)"),
        s("tables.<name>.window.grace", "duration", "`0s`", "how long after its end a window still takes out-of-order events; later ones are late"),
        s("tables.<name>.window.expires", "duration ≥ grace", "`24h`", "how long after its end a window is kept; then it is removed from the store and tombstoned in the changelog"),
        s("store.backend", "`rocksdb` or `memory`", "`rocksdb`", "where table state lives: RocksDB under `app.state_dir`, or memory only (rebuilt from the changelog at every start)"),
        s("store.cache_entries", "integer", "`0`", "entries of the read cache in front of each table partition's store (least recently used out first); 0: no cache"),
        s("store.block_cache_mb", "integer", lit(store.block_cache_mb), "one block cache for all stores (memtables are charged to it)"),
        s("store.write_buffer_mb", "integer", lit(store.write_buffer_mb), "one write-buffer budget for all stores"),
        s("store.flush_interval", "duration", dur(store.flush_interval), "how often stores are flushed (bounds the replay after a crash)"),
        s("health.broker_timeout", "duration", dur(health.broker_timeout), "the broker unreachable this long makes `/health` 503; shorter outages are ridden out"),
        s("health.stall_timeout", "duration", dur(health.stall_timeout), "an agent with events waiting that has not moved this long makes `/health` 503; idle agents never stall"),
        s("health.exit_when_unhealthy", "boolean", lit(health.exit_when_unhealthy), "exit with code 3 in either state, so that a supervisor starts a fresh worker"),
        s("ksql.statements", "path", "—", "the ksqlDB statements file, run at start when `services.ksqldb` is set"),
        s("ksql.replaces", "list of strings", "`[]`", "agents the statements replace; disabled when `services.ksqldb` is set; each must be in `[agents]`"),
        s("connectors.<name>.name", "string", "the key `<name>`", "the connector's name in Kafka Connect; two entries may describe the same connector for different deployments, one of them enabled"),
        s("connectors.<name>.enabled", "boolean", lit(true), "whether the worker declares the connector"),
        s("connectors.<name>.wait", "duration", dur(default_connector_wait()), "how long declaring waits for the connector's tasks to run"),
        s("connectors.<name>.config", "table of strings, numbers, booleans", "— (required)", "the connector's Connect config, sent as strings; `${app.id}` and `${app.topic_prefix}` are expanded").env("none (Connect keys hold dots)"),
    ]
}

/// The environment variable that sets `key`: `CTA_STREAM_` and the key in upper case,
/// levels joined by `__` (`agents.<name>.concurrency` → `CTA_STREAM_AGENTS__<NAME>__CONCURRENCY`).
pub fn env_var(key: &str) -> String {
    format!(
        "{ENV_PREFIX}_{}",
        key.replace('"', "").replace('.', "__").to_uppercase()
    )
}

/// The reference as the Markdown table of `docs/settings.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "| key | type | default | environment variable | meaning |\n|---|---|---|---|---|\n",
    );
    for d in reference() {
        let env = d
            .env_note
            .map(str::to_string)
            .unwrap_or_else(|| format!("`{}`", env_var(d.key)));
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {env} | {} |",
            d.key,
            d.kind,
            d.default,
            d.meaning.replace('|', "\\|")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
    use serde::Deserialize;

    use super::*;
    use crate::settings::Settings;

    type Error = de::value::Error;

    /// A deserializer that asks the settings' own `Deserialize` impls which keys exist:
    /// it answers every struct with all of its fields, every map with one entry named
    /// `<name>`, and notes the path of each value that is not a struct or a map.
    struct Walker<'a> {
        path: String,
        keys: Option<&'a RefCell<BTreeSet<String>>>,
    }

    impl<'a> Walker<'a> {
        fn at(&self, part: &str) -> Walker<'a> {
            let path = if self.path.is_empty() {
                part.to_string()
            } else {
                format!("{}.{part}", self.path)
            };
            Walker {
                path,
                keys: self.keys,
            }
        }
        /// Inside a leaf value (a list's items, an enum's fields) nothing is a key.
        fn quiet(&self) -> Walker<'a> {
            Walker {
                path: self.path.clone(),
                keys: None,
            }
        }
        /// A map or struct whose entries are `names`.
        fn entries(self, names: Vec<&'static str>) -> Entries<'a> {
            Entries {
                walker: self,
                names,
                next: None,
            }
        }
        fn leaf(&self) {
            if let Some(keys) = self.keys {
                keys.borrow_mut().insert(self.path.clone());
            }
        }
    }

    macro_rules! leaf {
        ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {$(
            fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
                self.leaf();
                v.$visit($($value)?)
            }
        )*};
    }

    impl<'de> de::Deserializer<'de> for Walker<'_> {
        type Error = Error;

        // Durations come through `deserialize_any` (an untagged text-or-number): text.
        leaf! {
            deserialize_any => visit_str("1s"),
            deserialize_bool => visit_bool(true),
            deserialize_i8 => visit_i8(1), deserialize_i16 => visit_i16(1),
            deserialize_i32 => visit_i32(1), deserialize_i64 => visit_i64(1),
            deserialize_u8 => visit_u8(1), deserialize_u16 => visit_u16(1),
            deserialize_u32 => visit_u32(1), deserialize_u64 => visit_u64(1),
            deserialize_f32 => visit_f32(1.0), deserialize_f64 => visit_f64(1.0),
            deserialize_char => visit_char('x'),
            deserialize_str => visit_str("x"), deserialize_string => visit_str("x"),
            deserialize_bytes => visit_bytes(b"x"), deserialize_byte_buf => visit_bytes(b"x"),
            deserialize_unit => visit_unit(),
            deserialize_identifier => visit_str("x"),
            deserialize_ignored_any => visit_unit(),
        }

        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_some(self)
        }
        fn deserialize_unit_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            v: V,
        ) -> Result<V::Value, Error> {
            self.deserialize_unit(v)
        }
        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            v: V,
        ) -> Result<V::Value, Error> {
            v.visit_newtype_struct(self)
        }
        fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            self.leaf();
            v.visit_seq(Items(self.quiet(), 1))
        }
        fn deserialize_tuple<V: Visitor<'de>>(self, n: usize, v: V) -> Result<V::Value, Error> {
            self.leaf();
            v.visit_seq(Items(self.quiet(), n))
        }
        fn deserialize_tuple_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            n: usize,
            v: V,
        ) -> Result<V::Value, Error> {
            self.deserialize_tuple(n, v)
        }
        fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_map(self.entries(vec!["<name>"]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Error> {
            v.visit_map(self.entries(fields.to_vec()))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Error> {
            self.leaf();
            v.visit_enum(Variant(variants[0], self.quiet()))
        }
        fn is_human_readable(&self) -> bool {
            // Addresses then come as (ip, port) tuples rather than text to parse.
            false
        }
    }

    struct Items<'a>(Walker<'a>, usize);

    impl<'de> de::SeqAccess<'de> for Items<'_> {
        type Error = Error;
        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, Error> {
            if self.1 == 0 {
                return Ok(None);
            }
            self.1 -= 1;
            seed.deserialize(self.0.quiet()).map(Some)
        }
    }

    /// An enum's first variant, whatever its shape.
    struct Variant<'a>(&'static str, Walker<'a>);

    impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
        type Error = Error;
        type Variant = Walker<'a>;
        fn variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<(T::Value, Walker<'a>), Error> {
            let name = seed.deserialize(self.0.into_deserializer())?;
            Ok((name, self.1))
        }
    }

    impl<'de> de::VariantAccess<'de> for Walker<'_> {
        type Error = Error;
        fn unit_variant(self) -> Result<(), Error> {
            Ok(())
        }
        fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
            seed.deserialize(self)
        }
        fn tuple_variant<V: Visitor<'de>>(self, n: usize, v: V) -> Result<V::Value, Error> {
            v.visit_seq(Items(self, n))
        }
        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Error> {
            v.visit_map(self.entries(fields.to_vec()))
        }
    }

    struct Entries<'a> {
        walker: Walker<'a>,
        names: Vec<&'static str>,
        next: Option<&'static str>,
    }

    impl<'de> de::MapAccess<'de> for Entries<'_> {
        type Error = Error;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, Error> {
            if self.names.is_empty() {
                return Ok(None);
            }
            let name = self.names.remove(0);
            self.next = Some(name);
            seed.deserialize(name.into_deserializer()).map(Some)
        }
        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
            let name = self.next.take().expect("a key before its value");
            seed.deserialize(self.walker.at(name))
        }
    }

    /// Every key the loader accepts, as the reference writes it: a map of free-form
    /// values (`params`, `config`, librdkafka properties) is one key.
    fn keys_of_the_code() -> BTreeSet<String> {
        let keys = RefCell::new(BTreeSet::new());
        let walker = Walker {
            path: String::new(),
            keys: Some(&keys),
        };
        Settings::deserialize(walker).expect("the walker satisfies every settings type");
        keys.into_inner()
            .into_iter()
            .map(|k| {
                let k = k.strip_suffix(".<name>").unwrap_or(&k).to_string();
                k.replace("topics.<name>", "topics.\"<name>\"")
            })
            .collect()
    }

    #[test]
    fn the_reference_lists_every_key_of_the_settings_and_no_other() {
        let code = keys_of_the_code();
        let documented: BTreeSet<String> = reference().iter().map(|d| d.key.to_string()).collect();
        let missing: Vec<_> = code.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&code).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "keys of the code missing from the reference: {missing:?}; keys in the reference the code does not know: {stale:?}"
        );
        assert_eq!(documented.len(), reference().len(), "a key listed twice");
    }

    #[test]
    fn environment_variables_follow_the_keys() {
        assert_eq!(
            env_var("app.commit_interval"),
            "CTA_STREAM_APP__COMMIT_INTERVAL"
        );
        assert_eq!(
            env_var("agents.<name>.source.timer"),
            "CTA_STREAM_AGENTS__<NAME>__SOURCE__TIMER"
        );
        assert_eq!(
            env_var("topics.\"<name>\".partitions"),
            "CTA_STREAM_TOPICS__<NAME>__PARTITIONS"
        );
    }
}
