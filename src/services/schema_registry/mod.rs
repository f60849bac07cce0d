//! An embedded Confluent-compatible Schema Registry (REST API v1, Avro only), persisted in a
//! compacted `_schemas`-like topic exactly as the Confluent server does (spec §1.5), so that
//! a restarted registry — or a Confluent one reading the same topic — finds the same ids.
//!
//! Writes go to the topic first (and wait for the delivery), then into the in-memory index.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use tokio::sync::watch;
use warp::Filter;

mod avro;
mod errors;
mod handlers;
mod kafka;
mod store;

pub use errors::{ApiError, RegistryServiceError};

use errors::ApiError as E;
use store::{Record, Store};

/// The registry: its state and its writer to the topic.
pub struct EmbeddedRegistry {
    topic: String,
    store: RwLock<Store>,
    log: kafka::Log,
    /// Serialises writes (plan, write to the topic, apply), as the single Confluent leader does.
    write_lock: tokio::sync::Mutex<()>,
}

impl EmbeddedRegistry {
    /// Replays `topic` (creating it, compacted, 1 partition, replication 1, when missing) to
    /// rebuild its state.
    pub async fn start(bootstrap: &str, topic: &str) -> Result<Arc<Self>, RegistryServiceError> {
        kafka::ensure_topic(bootstrap, topic).await?;
        let (b, t) = (bootstrap.to_string(), topic.to_string());
        let store = tokio::task::spawn_blocking(move || kafka::replay(&b, &t))
            .await
            .map_err(|e| RegistryServiceError::Topic {
                topic: topic.to_string(),
                message: e.to_string(),
            })??;
        let log = kafka::Log::new(bootstrap, topic)?;
        Ok(Arc::new(EmbeddedRegistry {
            topic: topic.to_string(),
            store: RwLock::new(store),
            log,
            write_lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// The topic holding the registry's state.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The warp routes (every answer JSON with the right content type; unknown paths 404,
    /// wrong methods 405, both with a Confluent error body).
    pub fn routes(
        self: &Arc<Self>,
    ) -> impl warp::Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone
    {
        let reg = self.clone();
        warp::any()
            .map(move || reg.clone())
            .and(warp::method())
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::body::stream())
            .then(handlers::handle)
            .recover(|_| async {
                Ok::<_, std::convert::Infallible>(handlers::API.internal_error())
            })
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `record` to the topic (waiting for the delivery), then applies it.
    async fn persist(&self, record: &Record) -> Result<(), E> {
        self.log.write(record).await.map_err(|e| {
            tracing::error!(error = %e, "schema registry: write failed");
            E::store(e)
        })?;
        self.store
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply_record(record);
        Ok(())
    }
}

/// Binds `addr` (clear error naming the address if taken) and serves until `shutdown` turns
/// true.
pub async fn serve(
    registry: Arc<EmbeddedRegistry>,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, RegistryServiceError> {
    let server = crate::http::server::serve(registry.routes(), addr, shutdown)
        .await
        .map_err(|e| RegistryServiceError::Bind {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
    tracing::info!(%addr, topic = %registry.topic, "schema registry: serving");
    Ok(server)
}
