//! Runs one agent instance and restarts it, with backoff, whenever it returns an error,
//! panics or ends before its stream did. The event it was working on gets the agent's
//! error policy; the failure is logged and shown on `/health`. No agent dies silently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::context::AgentContext;
use super::policy::{Disposition, FailureKind};
use super::registry::AgentFn;
use super::status::{AgentState, AgentStatus};
use crate::stream::typed::StreamError;
use crate::stream::Port;

/// How long an instance must run to count as recovered, resetting the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

pub(crate) async fn supervise(func: AgentFn, ctx: AgentContext, port: Arc<Port>) {
    let status = ctx.status.clone();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let mut shutdown = port.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            break;
        }
        status.set_state(AgentState::Running);
        let started = Instant::now();
        // Spawned so that a panic is caught at the task boundary, and so that the
        // agent's future is polled on any worker thread.
        let run = tokio::spawn(func.call(ctx.clone(), port.clone()));
        let outcome = run.await;
        let shutting_down = *shutdown.borrow();
        let error: anyhow::Error = match outcome {
            Ok(Ok(())) if shutting_down => break,
            Ok(Ok(())) => anyhow::anyhow!("the agent function returned before its stream ended"),
            Ok(Err(e)) => e,
            Err(join) if join.is_panic() => {
                let payload = join.into_panic();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-text panic payload".into());
                anyhow::anyhow!("panicked: {msg}")
            }
            Err(_) => break,
        };
        let message = format!("{error:#}");
        let fate = match &ctx.env.coordinator {
            // Whatever the agent wrote for the event is in the open transaction: only an
            // abort undoes it, and the abort sends the event round again.
            Some(t) => {
                if !port.take_current().is_empty() {
                    t.request_abort(&format!("agent {} failed: {message}", ctx.name));
                }
                InFlightFate::Disposed
            }
            None => dispose_in_flight(&port, &error, &message).await,
        };
        port.leave_event();
        if fate == InFlightFate::Abandoned {
            // Its partition moved away (or was rewound) under it: the failure is an
            // artefact of the move, and the event will be processed by its owner.
            tracing::info!(agent = %ctx.name, instance = ctx.instance, "abandoned an event of a partition no longer held: {message}");
            continue;
        }
        status.record_failure(message.clone());
        if shutting_down {
            tracing::error!(agent = %ctx.name, instance = ctx.instance, "agent failed during shutdown: {message}");
            break;
        }
        if started.elapsed() > STABLE_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        status.set_state(AgentState::Failing);
        AgentStatus::incr(&status.restarts);
        tracing::error!(
            agent = %ctx.name,
            instance = ctx.instance,
            restart_in = ?delay,
            "agent failed: {message}"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    // A clean stop: the last event handed out is done.
    drop(port.take_current());
    port.leave_event();
    status.set_state(AgentState::Stopped);
}

#[derive(Debug, PartialEq, Eq)]
enum InFlightFate {
    None,
    Disposed,
    Abandoned,
}

/// Applies the error policy to the events the failed instance held (one, or a batch).
async fn dispose_in_flight(port: &Port, error: &anyhow::Error, message: &str) -> InFlightFate {
    let in_hand = port.take_current();
    if in_hand.is_empty() {
        return InFlightFate::None;
    }
    if in_hand
        .iter()
        .all(|c| c.token.as_ref().is_some_and(|t| !t.is_current()))
    {
        return InFlightFate::Abandoned;
    }
    let stream_error = error.downcast_ref::<StreamError>();
    // A decode failure reached the agent only under policy `fail`; a service outage
    // is never the event's fault: both are delivered again.
    let redeliver = matches!(
        stream_error,
        Some(StreamError::Unavailable { .. } | StreamError::Decode { .. })
    );
    for inflight in &in_hand {
        if inflight.token.as_ref().is_some_and(|t| !t.is_current()) {
            continue;
        }
        let disposition = if redeliver {
            Disposition::Fail
        } else {
            port.owner
                .dispose(
                    &inflight.raw,
                    inflight.token.clone(),
                    FailureKind::Process,
                    message,
                )
                .await
        };
        if disposition == Disposition::Fail {
            if let Some(t) = &inflight.token {
                t.fail(message.to_string());
            }
        }
    }
    InFlightFate::Disposed
}
