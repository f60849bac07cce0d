//! The codecs of each topic, from `[topics."<name>"]`, built once and shared.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::settings::{CodecKind, Settings};

use super::{codec_for, Codec, CodecError, Part, SchemaRegistryClient};

#[derive(Clone, Debug)]
pub struct TopicCodecs {
    pub key: Codec,
    pub value: Codec,
}

pub struct CodecCache {
    settings: Arc<Settings>,
    registry: Option<Arc<SchemaRegistryClient>>,
    cache: RwLock<HashMap<String, TopicCodecs>>,
}

impl CodecCache {
    pub fn new(settings: Arc<Settings>, registry: Option<Arc<SchemaRegistryClient>>) -> Self {
        Self {
            settings,
            registry,
            cache: RwLock::default(),
        }
    }

    pub fn registry(&self) -> Option<&Arc<SchemaRegistryClient>> {
        self.registry.as_ref()
    }

    /// Codecs for writing to `topic`: keys default to raw, values to JSON.
    pub fn for_topic(&self, topic: &str) -> Result<TopicCodecs, CodecError> {
        if let Some(c) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return Ok(c.clone());
        }
        let t = self.settings.topic(topic);
        let key_schema = t.key_schema.as_ref().map(|p| self.settings.resolve_path(p));
        let value_schema = t
            .value_schema
            .as_ref()
            .map(|p| self.settings.resolve_path(p));
        let codecs = TopicCodecs {
            key: codec_for(
                t.key_codec.unwrap_or(CodecKind::Raw),
                topic,
                Part::Key,
                key_schema.as_deref(),
                self.registry.as_ref(),
            )?,
            value: codec_for(
                t.value_codec.unwrap_or(CodecKind::Json),
                topic,
                Part::Value,
                value_schema.as_deref(),
                self.registry.as_ref(),
            )?,
        };
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_string(), codecs.clone());
        Ok(codecs)
    }
}
