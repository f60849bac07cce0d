//! Is the worker doing its job? The verdict behind `/health`'s status code and the
//! optional exit (`health.exit_when_unhealthy`): a worker that is up but cut off from the
//! broker, or whose agents sit on waiting events without moving, is as good as dead —
//! the "zombie worker" of Faust deployments — and must say so.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::metrics::window::{AgentSample, Sample};
use crate::worker::WorkerState;

/// Exit code of a worker that gives up because it is unhealthy.
pub const EXIT_UNHEALTHY: i32 = 3;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Why the worker is unhealthy (empty: healthy).
    pub reasons: Vec<String>,
    /// Trouble not (yet) counted against it: a broker outage shorter than the timeout.
    pub warnings: Vec<String>,
    /// Reasons a supervisor restart may cure (the broker, stalled agents); an agent
    /// restarting after its own error is already being restarted by the runtime.
    #[serde(skip)]
    pub restart_helps: bool,
}

impl Verdict {
    pub fn healthy(&self) -> bool {
        self.reasons.is_empty()
    }
}

pub fn assess(s: &WorkerState) -> Verdict {
    let h = &s.settings.health;
    let mut v = Verdict::default();
    if let Some(what) = s.starting() {
        v.reasons.push(format!("starting: {what}"));
    }
    let broker = s.broker.snapshot();
    if !broker.reachable {
        let what = format!(
            "broker {} unreachable for {} s: {}",
            broker.bootstrap,
            broker.since_secs,
            broker.last_error.clone().unwrap_or_default()
        );
        if Duration::from_secs(broker.since_secs) >= h.broker_timeout {
            v.reasons.push(format!(
                "{what} (health.broker_timeout = {})",
                humantime::format_duration(h.broker_timeout)
            ));
            v.restart_helps = true;
        } else {
            v.warnings.push(what);
        }
    }
    for (name, st) in &s.agents {
        if !st.is_healthy() {
            v.reasons.push(format!("agent {name} is failing"));
            continue;
        }
        let lag = st.total_lag();
        let idle = st.idle();
        if lag > 0 && idle >= h.stall_timeout {
            v.reasons.push(format!(
                "agent {name} has made no progress for {} s with {lag} event(s) waiting \
                 (health.stall_timeout = {})",
                idle.as_secs(),
                humantime::format_duration(h.stall_timeout)
            ));
            v.restart_helps = true;
        }
    }
    v
}

/// What an agent has done so far, as one number that grows while it works: events
/// received, events acked, table records recovered.
fn progress_mark(s: &WorkerState, agent: &str, sample: &AgentSample) -> u64 {
    let recovered: u64 = s
        .tables
        .of_agent(agent)
        .iter()
        .flat_map(|t| t.held())
        .map(|p| p.progress().records)
        .sum();
    sample.events_in + sample.latency.count() + recovered
}

/// Every second: a sample for `/performance`, the agents' progress, and — when
/// `health.exit_when_unhealthy` is set — the exit of a worker that stays unhealthy.
pub async fn monitor(shared: Arc<WorkerState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let sample = Sample {
            at: std::time::Instant::now(),
            agents: shared
                .agents
                .iter()
                .map(|(name, st)| {
                    let snap = st.snapshot();
                    let a = AgentSample {
                        events_in: snap.events_in,
                        events_out: snap.events_out,
                        latency: st.latency.snapshot(),
                    };
                    st.note_progress(progress_mark(&shared, name, &a));
                    (name.clone(), a)
                })
                .collect(),
        };
        shared.performance.push(sample);
        if shared.settings.health.exit_when_unhealthy {
            let v = assess(&shared);
            if v.restart_helps {
                tracing::error!(
                    reasons = ?v.reasons,
                    "unhealthy, exiting so that a supervisor restarts the worker (health.exit_when_unhealthy)"
                );
                std::process::exit(EXIT_UNHEALTHY);
            }
        }
    }
}
