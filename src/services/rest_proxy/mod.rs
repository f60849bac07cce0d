//! An embedded Confluent-compatible Kafka REST Proxy (API v2, producing and topic
//! metadata): what devices that cannot speak Kafka — the CTA's weather station — use to
//! send records over HTTP. Avro records are registered with, and framed for, the Schema
//! Registry the settings name (embedded or external), exactly as Confluent's proxy does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use tokio::sync::watch;
use warp::Filter;

use crate::codec::SchemaRegistryClient;
use crate::kafka::client::{client_config, ClientKind};
use crate::kafka::names::{ClientRole, Names};
use crate::settings::Settings;

pub mod backend;
mod errors;
mod handlers;
pub mod metadata;
mod produce;

pub use backend::{KafkaBackend, ProduceFailure, ProxyBackend, ProxyRecord};
pub use errors::{ApiError, ProxyServiceError};

/// How long a metadata request may take before the proxy answers with a Kafka error.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one record's delivery, so that a request never hangs on a lost broker.
const DELIVERY_TIMEOUT_MS: &str = "30000";

pub struct EmbeddedRestProxy {
    backend: Box<dyn ProxyBackend>,
    registry: Option<Arc<SchemaRegistryClient>>,
    registry_url: String,
    /// Whether the broker creates a topic on first produce; when it does not, a produce
    /// to an unknown topic is answered 404 at once instead of timing out.
    auto_create: bool,
}

impl EmbeddedRestProxy {
    /// Creates the proxy's producer and admin client and asks the broker whether it
    /// auto-creates topics.
    pub async fn start(
        settings: &Settings,
        registry_url: &str,
    ) -> Result<Arc<Self>, ProxyServiceError> {
        let kafka_err = |e: rdkafka::error::KafkaError| ProxyServiceError::Kafka {
            bootstrap: settings.app.broker.clone(),
            message: e.to_string(),
        };
        let mut pc = client_config(settings, ClientKind::Producer);
        pc.set(
            "client.id",
            Names::new(settings).client_id(ClientRole::RestProxy),
        );
        pc.set("message.timeout.ms", DELIVERY_TIMEOUT_MS);
        let producer: FutureProducer = pc.create().map_err(kafka_err)?;
        let admin: AdminClient<DefaultClientContext> = client_config(settings, ClientKind::Admin)
            .create()
            .map_err(kafka_err)?;
        let registry = match registry_url.trim() {
            "" => None,
            url => Some(Arc::new(
                SchemaRegistryClient::new(url)
                    .map_err(|e| ProxyServiceError::Registry(e.to_string()))?,
            )),
        };
        Ok(Self::with_backend(
            Box::new(KafkaBackend { producer, admin }),
            registry,
            registry_url,
        )
        .await)
    }

    /// A proxy over `backend`, registering Avro schemas with `registry` (at
    /// `registry_url`, for the logs).
    pub async fn with_backend(
        backend: Box<dyn ProxyBackend>,
        registry: Option<Arc<SchemaRegistryClient>>,
        registry_url: &str,
    ) -> Arc<Self> {
        let auto_create = backend.auto_creates().await;
        Arc::new(EmbeddedRestProxy {
            backend,
            registry,
            registry_url: registry_url.to_string(),
            auto_create,
        })
    }

    /// The warp routes (every answer JSON; unknown paths 404, wrong methods 405, both with
    /// a Confluent error body).
    pub fn routes(
        self: &Arc<Self>,
    ) -> impl warp::Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone
    {
        let proxy = self.clone();
        warp::any()
            .map(move || proxy.clone())
            .and(warp::method())
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::stream())
            .then(handlers::handle)
            .recover(|_| async {
                Ok::<_, std::convert::Infallible>(handlers::API.internal_error())
            })
    }
}

/// Binds `addr` (clear error naming the address if taken) and serves until `shutdown` turns
/// true.
pub async fn serve(
    proxy: Arc<EmbeddedRestProxy>,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, ProxyServiceError> {
    let server = crate::http::server::serve(proxy.routes(), addr, shutdown)
        .await
        .map_err(|e| ProxyServiceError::Bind {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
    tracing::info!(%addr, registry = %proxy.registry_url, auto_create = proxy.auto_create, "rest proxy: serving");
    Ok(server)
}
