//! An embedded Confluent-compatible Kafka REST Proxy (API v2, producing and topic
//! metadata): what devices that cannot speak Kafka — the CTA's weather station — use to
//! send records over HTTP. Avro records are registered with, and framed for, the Schema
//! Registry the settings name (embedded or external), exactly as Confluent's proxy does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use tokio::sync::watch;
use warp::Filter;

use crate::codec::SchemaRegistryClient;
use crate::kafka::client::{client_config, ClientKind};
use crate::kafka::names::{ClientRole, Names};
use crate::settings::Settings;

mod errors;
mod handlers;
mod metadata;
mod produce;

pub use errors::{ApiError, ProxyServiceError};

/// How long a metadata request may take before the proxy answers with a Kafka error.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one record's delivery, so that a request never hangs on a lost broker.
const DELIVERY_TIMEOUT_MS: &str = "30000";

pub struct EmbeddedRestProxy {
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
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
        let mut proxy = EmbeddedRestProxy {
            producer,
            admin,
            registry,
            registry_url: registry_url.to_string(),
            auto_create: false,
        };
        proxy.auto_create = proxy.broker_auto_creates().await;
        Ok(Arc::new(proxy))
    }

    /// The broker's `auto.create.topics.enable` (false when it cannot be read).
    async fn broker_auto_creates(&self) -> bool {
        let Ok(meta) = self.cluster(None).await else {
            return false;
        };
        let Some(&broker) = meta.brokers.first() else {
            return false;
        };
        let spec = ResourceSpecifier::Broker(broker);
        let opts = AdminOptions::new().request_timeout(Some(METADATA_TIMEOUT));
        match self.admin.describe_configs([&spec], &opts).await {
            Ok(results) => results.into_iter().flatten().any(|r| {
                r.get("auto.create.topics.enable")
                    .and_then(|e| e.value.as_deref())
                    == Some("true")
            }),
            Err(_) => false,
        }
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
