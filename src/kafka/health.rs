//! Broker reachability, probed in the background for `/health`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct BrokerState {
    pub bootstrap: String,
    pub reachable: bool,
    pub brokers: usize,
    pub last_error: Option<String>,
    /// Seconds since reachability last changed.
    pub since_secs: u64,
}

#[derive(Clone)]
pub struct BrokerHealth {
    state: Arc<Mutex<(BrokerState, Instant)>>,
}

impl BrokerHealth {
    pub fn new(bootstrap: &str) -> Self {
        Self {
            state: Arc::new(Mutex::new((
                BrokerState {
                    bootstrap: bootstrap.to_string(),
                    reachable: false,
                    brokers: 0,
                    last_error: Some("not checked yet".into()),
                    since_secs: 0,
                },
                Instant::now(),
            ))),
        }
    }

    /// Asks the cluster for its metadata once.
    pub fn probe<C: ClientContext>(&self, client: &Client<C>, timeout: Duration) -> bool {
        let result = client.fetch_metadata(None, timeout);
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let was = g.0.reachable;
        match result {
            Ok(md) => {
                g.0.reachable = true;
                g.0.brokers = md.brokers().len();
                g.0.last_error = None;
            }
            Err(e) => {
                g.0.reachable = false;
                g.0.last_error = Some(e.to_string());
            }
        }
        if was != g.0.reachable {
            g.1 = Instant::now();
            if g.0.reachable {
                tracing::info!(broker = %g.0.bootstrap, "broker reachable");
            } else {
                tracing::error!(broker = %g.0.bootstrap, error = ?g.0.last_error, "broker unreachable");
            }
        }
        g.0.reachable
    }

    pub fn snapshot(&self) -> BrokerState {
        let g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = g.0.clone();
        s.since_secs = g.1.elapsed().as_secs();
        s
    }
}
