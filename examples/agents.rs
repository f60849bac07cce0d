//! Small agents that show the runtime's features; the tests, the benchmarks and the docs'
//! worked examples run them (`examples/settings.toml` enables some).

use std::collections::BTreeSet;
use std::sync::{LazyLock, Mutex};

use cta_stream::prelude::*;

use crate::tables::{JobsSeen, KeyCounts, WordCounts};

/// The README's example: `{"text": "hi"}` in, `{"text": "HI"}` out to the first sink.
#[derive(Debug, Deserialize, Serialize)]
pub struct Greeting {
    pub text: String,
}

pub async fn shout(ctx: AgentContext, mut greetings: Stream<Greeting>) -> AgentResult {
    let out = ctx.sink(0)?;
    while let Some(event) = greetings.next().await? {
        let loud = Greeting {
            text: event.value.text.to_uppercase(),
        };
        ctx.send(out, event.key.as_ref(), &loud).await?;
    }
    Ok(())
}
register_agent!("shout", shout);

/// Forwards any JSON value unchanged (the benchmark's pass-through agent).
pub async fn forward(ctx: AgentContext, mut events: Stream<serde_json::Value>) -> AgentResult {
    let out = ctx.sink(0)?;
    while let Some(event) = events.next().await? {
        ctx.send(out, event.key.as_ref(), &event.value).await?;
    }
    Ok(())
}
register_agent!("forward", forward);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TickerParams {
    /// Keys every tick with this name (which worker ticked), instead of its number.
    #[serde(default)]
    worker: Option<String>,
}

/// Emits the `Tick` (`{"n": .., "at_ms": .., "seq": ..}`) to its first sink at every
/// firing of its timer, keyed by its number or by `params.worker`.
pub async fn ticker(ctx: AgentContext, mut ticks: Stream<Tick>) -> AgentResult {
    let p: TickerParams = ctx.params()?;
    let out = ctx.sink(0)?;
    while let Some(tick) = ticks.next().await? {
        let key = p.worker.clone().unwrap_or_else(|| tick.value.n.to_string());
        ctx.send(out, Some(&key), &tick.value).await?;
    }
    Ok(())
}
register_agent!("ticker", ticker);

/// A job that may ask its agent to fail or panic, once per event.
#[derive(Debug, Deserialize, Serialize)]
pub struct Job {
    pub id: u64,
    #[serde(default)]
    pub fail: bool,
    #[serde(default)]
    pub panic: bool,
    /// Fail every time (a poison event).
    #[serde(default)]
    pub fail_always: bool,
    /// Milliseconds to work on the job (to test shutdown while busy).
    #[serde(default)]
    pub sleep_ms: u64,
}

static FAILED_ONCE: LazyLock<Mutex<BTreeSet<(String, i32, i64)>>> = LazyLock::new(Default::default);

/// Copies jobs to its first sink; a job marked `fail` (or `panic`) makes the agent fail
/// the first time it is seen, to exercise supervision and the error policies.
pub async fn jobs(ctx: AgentContext, mut jobs: Stream<Job>) -> AgentResult {
    let out = ctx.sink(0)?;
    // When the settings give it one, the agent also counts the jobs it has seen by id.
    let seen = ctx.table::<JobsSeen>().ok();
    while let Some(event) = jobs.next().await? {
        let first_time = FAILED_ONCE
            .lock()
            .map_err(|_| anyhow!("lock poisoned"))?
            .insert((event.topic.to_string(), event.partition, event.offset));
        if event.value.fail_always {
            bail!("job {} always fails", event.value.id);
        }
        if event.value.fail && first_time {
            bail!("job {} failed on purpose", event.value.id);
        }
        if event.value.panic && first_time {
            panic!("job {} panicked on purpose", event.value.id);
        }
        if event.value.sleep_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(event.value.sleep_ms)).await;
        }
        if let Some(seen) = &seen {
            let n = seen.get(&event.value.id).await?.unwrap_or(0);
            seen.insert(&event.value.id, &(n + 1)).await?;
        }
        ctx.send(out, event.key.as_ref(), &event.value).await?;
    }
    Ok(())
}
register_agent!("jobs", jobs);

/// Faust's word count: each sentence `{"text": ".."}` adds one to each of its words in
/// the table `word_counts`. A write goes to the table partition of the event in hand, so
/// with more than one partition the sentences' topic must be keyed by word.
pub async fn word_count(ctx: AgentContext, mut sentences: Stream<Greeting>) -> AgentResult {
    let counts = ctx.table::<WordCounts>()?;
    while let Some(event) = sentences.next().await? {
        let words = event.value.text.split(|c: char| !c.is_alphanumeric());
        for word in words.filter(|w| !w.is_empty()).map(str::to_lowercase) {
            let n = counts.get(&word).await?.unwrap_or(0) + 1;
            counts.insert(&word, &n).await?;
        }
    }
    Ok(())
}
register_agent!("word_count", word_count);

/// Counts the records of each key of its source into the table `key_counts`.
#[derive(Debug, Default, Deserialize)]
struct CountParams {
    /// Milliseconds of work per event (so tests can kill the worker mid-stream).
    #[serde(default)]
    delay_ms: u64,
}

pub async fn count_keys(
    ctx: AgentContext,
    mut events: Stream<bytes::Bytes, String>,
) -> AgentResult {
    let counts = ctx.table::<KeyCounts>()?;
    let params: CountParams = ctx.params()?;
    while let Some(event) = events.next().await? {
        if params.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(params.delay_ms)).await;
        }
        let Some(key) = event.key else { continue };
        let n = counts.get(&key).await?.unwrap_or(0) + 1;
        counts.insert(&key, &n).await?;
    }
    Ok(())
}
register_agent!("count_keys", count_keys);
