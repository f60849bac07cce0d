//! `GET /performance`: what `/metrics` says, worked out for people — recent throughput,
//! latency percentiles, lag and memory — as JSON.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{json, Value};

use crate::metrics::histogram::HistogramSnapshot;
use crate::worker::WorkerState;

/// Latency percentiles in milliseconds, rounded to the microsecond.
fn latency_ms(h: &HistogramSnapshot) -> Value {
    let ms = |v: Option<f64>| v.map(|s| (s * 1e6).round() / 1e3);
    json!({
        "samples": h.count(),
        "p50": ms(h.quantile(0.5)),
        "p90": ms(h.quantile(0.9)),
        "p99": ms(h.quantile(0.99)),
        "mean": ms(h.mean()),
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub fn render(s: &WorkerState) -> Value {
    let last_10s = s.performance.rates(Duration::from_secs(10));
    let last_60s = s.performance.rates(Duration::from_secs(60));
    let agents: serde_json::Map<String, Value> = s
        .agents
        .iter()
        .map(|(name, st)| {
            let snap = st.snapshot();
            let rate =
                |w: &std::collections::BTreeMap<String, crate::metrics::window::AgentRates>,
                 out: bool| {
                    w.get(name)
                        .map(|r| round2(if out { r.out_per_sec } else { r.in_per_sec }))
                };
            let lag = st.lag();
            (
                name.clone(),
                json!({
                    "state": snap.state,
                    "events_in": snap.events_in,
                    "events_out": snap.events_out,
                    "acked": snap.acked,
                    "throughput": {
                        "in_per_sec_10s": rate(&last_10s, false),
                        "in_per_sec_60s": rate(&last_60s, false),
                        "out_per_sec_10s": rate(&last_10s, true),
                        "out_per_sec_60s": rate(&last_60s, true),
                    },
                    "latency_ms_60s": last_60s.get(name).map(|r| latency_ms(&r.latency)),
                    "latency_ms_since_start": latency_ms(&st.latency.snapshot()),
                    "lag": {
                        "total": lag.iter().map(|l| l.lag).sum::<i64>(),
                        "partitions": lag,
                    },
                    "idle_secs": snap.idle_secs,
                }),
            )
        })
        .collect();
    json!({
        "app": s.settings.app.id,
        "uptime_secs": s.started.elapsed().as_secs(),
        "agents": agents,
        "producer": {"in_flight": s.producer.in_flight()},
        "transactions": s.transactions.as_ref().map(|t| json!({
            "committed": t.committed.load(Relaxed),
            "aborted": t.aborted.load(Relaxed),
        })),
        "memory": {
            "resident_bytes": crate::metrics::process::resident_bytes(),
            "peak_resident_bytes": crate::metrics::process::peak_resident_bytes(),
            "rocksdb": s.tables.memory(),
        },
        "broker": s.broker.snapshot(),
    })
}
