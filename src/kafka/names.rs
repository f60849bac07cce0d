//! Every name the runtime makes up — topics, consumer groups, transactional and client
//! ids, local store directories — in one place, so that they can be read in one table
//! (docs/architecture.md#internal-names) and changed in one place. Topics are in the app's
//! namespace (`app.topic_prefix`); groups and ids start with the app id.

use crate::settings::Settings;

/// The names of one app, from its settings.
#[derive(Clone, Copy)]
pub struct Names<'a> {
    settings: &'a Settings,
}

/// What a Kafka client of the worker is for, in its `client.id` (the broker's logs and
/// quotas name clients by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
    /// The agents' consumers, the shared producer, the admin client, table readers.
    Worker,
    /// The embedded REST Proxy's producer and admin client.
    RestProxy,
}

impl<'a> Names<'a> {
    pub fn new(settings: &'a Settings) -> Self {
        Self { settings }
    }

    fn app_id(&self) -> &'a str {
        &self.settings.app.id
    }

    /// The broker's name of the app's topic `name`.
    pub fn topic(&self, name: &str) -> String {
        self.settings.app.topic(name)
    }

    /// `<prefix><app-id>-<agent>-dlq`: where `on_error = "dead-letter"` writes.
    pub fn dead_letter_topic(&self, agent: &str) -> String {
        self.topic(&format!("{}-{agent}-dlq", self.app_id()))
    }

    /// `<prefix><app-id>-<agent>-<stage>-repartition`: where `group_by(stage, ..)`
    /// re-keys the agent's events, so a table keyed by the new key is co-partitioned.
    pub fn repartition_topic(&self, agent: &str, stage: &str) -> String {
        self.topic(&format!("{}-{agent}-{stage}-repartition", self.app_id()))
    }

    /// The table's `changelog`, else `<prefix><app-id>-<table>-changelog`.
    pub fn changelog_topic(&self, table: &str) -> String {
        self.settings
            .tables
            .get(table)
            .and_then(|t| t.changelog.clone())
            .unwrap_or_else(|| self.topic(&format!("{}-{table}-changelog", self.app_id())))
    }

    /// The topic a global table follows: its `source_topic`, the changelog of the table
    /// it `mirrors`, or its own changelog.
    pub fn global_source_topic(&self, table: &str) -> String {
        let t = self.settings.tables.get(table);
        if let Some(topic) = t.and_then(|t| t.source_topic.clone()) {
            return topic;
        }
        match t.and_then(|t| t.mirrors.as_deref()) {
            Some(other) => self.changelog_topic(other),
            None => self.changelog_topic(table),
        }
    }

    /// `<app-id>-<agent>`: one consumer group per agent, so that agents fail, restart
    /// and rebalance independently.
    pub fn agent_group(&self, agent: &str) -> String {
        format!("{}-{agent}", self.app_id())
    }

    /// `<app-id>-restore`: the group id librdkafka needs to assign changelog partitions
    /// for recovery (never subscribed, never committed).
    pub fn restore_group(&self) -> String {
        format!("{}-restore", self.app_id())
    }

    /// `<app-id>-<table>-global`: the reader of a global table (never committed: a
    /// global table is read from its store's offsets).
    pub fn global_group(&self, table: &str) -> String {
        format!("{}-{table}-global", self.app_id())
    }

    /// `<prefix><app-id>-__leader`: the one-partition topic of the leader election
    /// (`on_leader` timers); nothing is written to it.
    pub fn leader_topic(&self) -> String {
        self.topic(&format!("{}-__leader", self.app_id()))
    }

    /// `<app-id>-__leader`: the group whose holder of the leader topic's one partition is
    /// the app's leader; its committed metadata numbers the `on_leader` timers' firings.
    pub fn leader_group(&self) -> String {
        format!("{}-__leader", self.app_id())
    }

    /// `app.transactional_id`, else `<app-id>-<host>-<web port>`: stable across restarts
    /// of one worker, so that a restarted worker fences its predecessor at once.
    pub fn transactional_id(&self) -> String {
        self.settings
            .app
            .transactional_id
            .clone()
            .unwrap_or_else(|| {
                let host = std::fs::read_to_string("/etc/hostname")
                    .map(|h| h.trim().to_string())
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into());
                format!("{}-{host}-{}", self.app_id(), self.settings.web.bind.port())
            })
    }

    /// `<app-id>-worker`, `<app-id>-rest-proxy`.
    pub fn client_id(&self, role: ClientRole) -> String {
        match role {
            ClientRole::Worker => format!("{}-worker", self.app_id()),
            ClientRole::RestProxy => format!("{}-rest-proxy", self.app_id()),
        }
    }
}

/// The directory of a table partition's store under `<state_dir>/tables`:
/// `<table>-<partition>`, or `<table>-global` for a global table's one store.
pub fn store_dir(table: &str, partition: Option<i32>) -> String {
    match partition {
        Some(p) => format!("{table}-{p}"),
        None => format!("{table}-global"),
    }
}

/// The group id the embedded Schema Registry's reader of its schemas topic gives
/// librdkafka: per process, never committed (it reads the topic whole at every start).
pub fn schema_registry_reader_group(pid: u32) -> String {
    format!("cta-schema-registry-{pid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Settings {
        Settings::from_toml_str(&format!(
            "[app]\nid = \"cta\"\n{extra}\n[agents.read]\nsource.topics = [\"in\"]\n\
             [tables.counts]\nagent = \"read\"\n[tables.counts_all]\nglobal = true\n\
             mirrors = \"counts\"\n[tables.stations]\nagent = \"read\"\nchangelog = \"st.v1\"\n\
             [tables.weather]\nglobal = true\nsource_topic = \"weather\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn names_follow_the_app_id_and_the_namespace() {
        let s = settings("");
        let n = Names::new(&s);
        assert_eq!(n.dead_letter_topic("read"), "cta-read-dlq");
        assert_eq!(n.changelog_topic("counts"), "cta-counts-changelog");
        assert_eq!(n.changelog_topic("stations"), "st.v1");
        assert_eq!(n.global_source_topic("counts_all"), "cta-counts-changelog");
        assert_eq!(n.global_source_topic("weather"), "weather");
        assert_eq!(n.agent_group("read"), "cta-read");
        assert_eq!(n.restore_group(), "cta-restore");
        assert_eq!(n.global_group("weather"), "cta-weather-global");
        assert_eq!(n.leader_topic(), "cta-__leader");
        assert_eq!(n.leader_group(), "cta-__leader");
        assert_eq!(n.client_id(ClientRole::Worker), "cta-worker");
        assert_eq!(n.client_id(ClientRole::RestProxy), "cta-rest-proxy");
        assert!(n.transactional_id().starts_with("cta-"));
        assert!(n.transactional_id().ends_with("-8888"));
        assert_eq!(store_dir("counts", Some(3)), "counts-3");
        assert_eq!(store_dir("weather", None), "weather-global");

        // Topics are in the namespace; groups and ids are not topics.
        let s = settings("topic_prefix = \"t1.\"\ntransactional_id = \"tx\"");
        let n = Names::new(&s);
        assert_eq!(n.dead_letter_topic("read"), "t1.cta-read-dlq");
        assert_eq!(n.changelog_topic("counts"), "t1.cta-counts-changelog");
        assert_eq!(n.changelog_topic("stations"), "t1.st.v1");
        assert_eq!(
            n.global_source_topic("counts_all"),
            "t1.cta-counts-changelog"
        );
        assert_eq!(n.global_source_topic("weather"), "t1.weather");
        assert_eq!(n.agent_group("read"), "cta-read");
        assert_eq!(n.leader_topic(), "t1.cta-__leader");
        assert_eq!(n.leader_group(), "cta-__leader");
        assert_eq!(n.transactional_id(), "tx");
    }
}
