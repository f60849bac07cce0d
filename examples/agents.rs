//! Small agents that show the runtime's features; the tests, the benchmarks and the docs'
//! worked examples run them (`examples/settings.toml` enables some).

use std::collections::BTreeSet;
use std::sync::{LazyLock, Mutex};

use cta_stream::prelude::*;

use crate::tables::{JobsSeen, KeyCounts, ValueCounts, WindowCounts, WordCounts};

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
/// the table `word_counts`. The words are re-keyed through a repartition topic, so each
/// word is counted in one partition however the sentences are spread.
pub async fn word_count(ctx: AgentContext, sentences: Stream<Greeting>) -> AgentResult {
    let counts = ctx.table::<WordCounts>()?;
    let mut words = sentences.group_by_many(&ctx, "word", |s| {
        let words = s.value.text.split(|c: char| !c.is_alphanumeric());
        let words = words.filter(|w| !w.is_empty()).map(str::to_lowercase);
        words.map(|w| (w, ())).collect::<Vec<_>>()
    })?;
    while let Some(word) = words.next().await? {
        let word: String = word.key.unwrap_or_default();
        let n = counts.get(&word).await?.unwrap_or(0) + 1;
        counts.insert(&word, &n).await?;
    }
    Ok(())
}
register_agent!("word_count", word_count, group_by = ["word"]);

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

/// Counts the records of each value of its source (text) into the table `value_counts`:
/// the values are re-keyed through a repartition topic first (`group_by`), so each value
/// is counted in one table partition whatever the source's keys and partitions.
pub async fn count_values(ctx: AgentContext, events: Stream<String>) -> AgentResult {
    let counts = ctx.table::<ValueCounts>()?;
    let params: CountParams = ctx.params()?;
    let mut by_value = events.group_by(&ctx, "value", |e| e.value.clone())?;
    while let Some(event) = by_value.next().await? {
        if params.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(params.delay_ms)).await;
        }
        let Some(value) = event.key else { continue };
        let n = counts.get(&value).await?.unwrap_or(0) + 1;
        counts.insert(&value, &n).await?;
    }
    Ok(())
}
register_agent!("count_values", count_values, group_by = ["value"]);

/// `count_keys` in batches (`take`): up to 100 events or 100 ms, counted per key, then
/// written to `key_counts` once per key and batch. The batch is acked when the next one
/// is asked for. Its source has one partition (a batch's table writes share it).
pub async fn count_batched(ctx: AgentContext, events: Stream<bytes::Bytes, String>) -> AgentResult {
    let counts = ctx.table::<KeyCounts>()?;
    let mut batches = events.take(100, std::time::Duration::from_millis(100));
    while let Some(batch) = batches.next().await? {
        let mut per_key: std::collections::BTreeMap<String, u64> = Default::default();
        for key in batch.into_iter().filter_map(|e| e.key) {
            *per_key.entry(key).or_default() += 1;
        }
        for (key, n) in per_key {
            let total = counts.get(&key).await?.unwrap_or(0) + n;
            counts.insert(&key, &total).await?;
        }
    }
    Ok(())
}
register_agent!("count_batched", count_batched);

/// Counts the records of each key of its source per time window, by the records'
/// timestamps, into the windowed table `window_counts` (its `window` setting chooses the
/// kind, size, grace and expiry). A record whose windows have all closed is late: it goes
/// to the agent's error policy (`on_error = "dead-letter"` shows which ones).
pub async fn count_windows(
    ctx: AgentContext,
    mut events: Stream<bytes::Bytes, String>,
) -> AgentResult {
    let counts = ctx.windowed_table::<WindowCounts>()?;
    let params: CountParams = ctx.params()?;
    while let Some(event) = events.next().await? {
        if params.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(params.delay_ms)).await;
        }
        let Some(key) = event.key else { continue };
        counts.update(&key, |n| n.unwrap_or(0) + 1).await?;
    }
    Ok(())
}
register_agent!("count_windows", count_windows);
