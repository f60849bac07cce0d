//! Binding agent names to functions. An agent file registers its function with
//! `register_agent!`; the settings bind an agent entry to it by name.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::context::AgentContext;
use crate::stream::{Port, Stream};

/// What an agent returns: `Ok` when its stream ended, an error to be restarted.
pub type AgentResult = anyhow::Result<()>;

type BoxedAgent = dyn Fn(AgentContext, Arc<Port>) -> Pin<Box<dyn Future<Output = AgentResult> + Send>>
    + Send
    + Sync;

/// A type-erased agent function: decodes its stream into the types the function takes.
#[derive(Clone)]
pub struct AgentFn {
    call: Arc<BoxedAgent>,
    /// The Rust type of the values, for `cta-stream agents`.
    pub value_type: &'static str,
    /// The topics its stream passes through (`group_by`, `through`): the worker creates
    /// them and subscribes the agent to them before it starts.
    pub stages: Vec<Stage>,
}

/// A stage the function's stream passes through, declared with the function so the
/// worker knows its topics before the first event (as Kafka Streams knows a topology).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// `stream.group_by(&ctx, name, key_fn)`: an internal repartition topic.
    GroupBy(String),
    /// `stream.through(&ctx, topic)`: a topic of the app's.
    Through(String),
}

impl AgentFn {
    /// Wraps `async fn(AgentContext, Stream<V, K>) -> AgentResult`.
    pub fn new<V, K, F, Fut>(f: F) -> Self
    where
        V: DeserializeOwned + Send + 'static,
        K: DeserializeOwned + Send + 'static,
        F: Fn(AgentContext, Stream<V, K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AgentResult> + Send + 'static,
    {
        Self {
            call: Arc::new(move |ctx, port| Box::pin(f(ctx, Stream::<V, K>::attach(port)))),
            value_type: std::any::type_name::<V>(),
            stages: Vec::new(),
        }
    }

    /// Declares a `group_by` stage named `name` (its repartition topic is
    /// `<app-id>-<agent>-<name>-repartition`).
    pub fn group_by(mut self, name: &str) -> Self {
        self.stages.push(Stage::GroupBy(name.to_string()));
        self
    }

    /// Declares that the stream goes `through` topic `topic` (a name of the settings'
    /// namespace: `app.topic_prefix` goes before it).
    pub fn through(mut self, topic: &str) -> Self {
        self.stages.push(Stage::Through(topic.to_string()));
        self
    }

    pub(crate) fn call(
        &self,
        ctx: AgentContext,
        port: Arc<Port>,
    ) -> Pin<Box<dyn Future<Output = AgentResult> + Send>> {
        (self.call)(ctx, port)
    }
}

/// A function registered from an agent file, collected at link time.
pub struct AgentRegistration {
    pub name: &'static str,
    pub file: &'static str,
    make: fn() -> AgentFn,
}

impl AgentRegistration {
    pub const fn new(name: &'static str, file: &'static str, make: fn() -> AgentFn) -> Self {
        Self { name, file, make }
    }
}

inventory::collect!(AgentRegistration);

/// Registers an agent function under a name that `settings.toml` refers to:
///
/// ```ignore
/// async fn shout(ctx: AgentContext, mut stream: Stream<Greeting>) -> AgentResult { .. }
/// cta_stream::register_agent!("shout", shout);
/// // A function whose stream is re-keyed or forwarded declares the stages:
/// cta_stream::register_agent!("per_line", per_line, group_by = ["line"]);
/// cta_stream::register_agent!("audit", audit, through = ["audited"]);
/// ```
#[macro_export]
macro_rules! register_agent {
    ($name:literal, $func:path $(, group_by = [$($g:literal),* $(,)?])? $(, through = [$($t:literal),* $(,)?])? $(,)?) => {
        const _: () = {
            fn __make_agent() -> $crate::agent::AgentFn {
                $crate::agent::AgentFn::new($func)
                    $($(.group_by($g))*)?
                    $($(.through($t))*)?
            }
            $crate::inventory::submit! {
                $crate::agent::AgentRegistration::new($name, file!(), __make_agent)
            }
        };
    };
}

/// The agent functions a worker can run, by name.
#[derive(Clone, Default)]
pub struct AgentRegistry {
    functions: BTreeMap<String, (AgentFn, String)>,
}

impl AgentRegistry {
    /// Every function registered with `register_agent!` in the binary.
    pub fn collected() -> Self {
        let mut r = Self::default();
        for reg in inventory::iter::<AgentRegistration> {
            r.functions
                .insert(reg.name.to_string(), ((reg.make)(), reg.file.to_string()));
        }
        r
    }

    pub fn insert(&mut self, name: &str, f: AgentFn) {
        self.functions
            .insert(name.to_string(), (f, "<registered in code>".into()));
    }

    pub fn get(&self, name: &str) -> Option<&AgentFn> {
        self.functions.get(name).map(|(f, _)| f)
    }

    pub fn names(&self) -> Vec<&str> {
        self.functions.keys().map(String::as_str).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &AgentFn, &str)> {
        self.functions
            .iter()
            .map(|(n, (f, file))| (n.as_str(), f, file.as_str()))
    }
}

/// Default key type: the key's bytes as they are.
pub type RawKey = Bytes;
