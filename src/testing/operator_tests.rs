//! The stream operators through the driver: what each yields, and that acks survive
//! them — a crash or revoke under a `take` batch, a `group_by` or a `through` loses
//! nothing at-least-once and repeats nothing exactly-once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::TestDriver;
use crate::agent::{AgentContext, AgentFn, AgentResult};
use crate::register_table;
use crate::stream::{EventStream, Stream};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    id: u32,
    station: u32,
    line: String,
}

const LINES: [&str; 3] = ["red", "blue", "green"];

fn entry(id: u32) -> Entry {
    Entry {
        id,
        station: id % 7,
        line: LINES[id as usize % LINES.len()].into(),
    }
}

async fn feed(t: &TestDriver, ids: std::ops::Range<u32>) {
    for id in ids {
        let e = entry(id);
        t.send("entries", Some(&e.station.to_string()), &e)
            .await
            .unwrap();
    }
}

fn expected_per_line(n: u32) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for id in 0..n {
        *m.entry(entry(id).line).or_default() += 1;
    }
    m
}

// ---- filter, map, enumerate, items ------------------------------------------------

async fn odd_ids(ctx: AgentContext, stream: Stream<Entry, String>) -> AgentResult {
    let out = ctx.sink(0)?;
    let mut s = stream
        .filter(|e| e.value.id % 2 == 1)
        .map(|e| (e.key, e.value.id * 10))
        .enumerate();
    while let Some((n, (key, tenfold))) = s.next().await? {
        ctx.send(out, key.as_deref(), &(n, tenfold)).await?;
    }
    Ok(())
}

#[tokio::test]
async fn filter_map_and_enumerate_yield_what_they_say_and_count_the_filtered() {
    let mut t = TestDriver::with_settings(
        "[app]\nid = \"ops\"\n[agents.odd]\nsource.topics = [\"entries\"]\n\
         sinks = [\"odd\"]\n",
    )
    .unwrap()
    .agent("odd", AgentFn::new(odd_ids))
    .start()
    .await
    .unwrap();
    feed(&t, 0..10).await;
    t.settle().await.unwrap();
    let got: Vec<(u64, u32)> = t.values("odd").await.unwrap();
    assert_eq!(got, vec![(0, 10), (1, 30), (2, 50), (3, 70), (4, 90)]);
    let s = t.status("odd").unwrap();
    assert_eq!((s.events_in, s.filtered), (10, 5));
}

// ---- items and then ---------------------------------------------------------------

async fn async_double(ctx: AgentContext, stream: Stream<Entry, String>) -> AgentResult {
    let out = ctx.sink(0)?;
    let mut s = stream.items().then(|(key, e)| async move {
        tokio::task::yield_now().await;
        (key, e.id * 2)
    });
    while let Some((key, doubled)) = s.next().await? {
        ctx.send(out, key.as_deref(), &doubled).await?;
    }
    Ok(())
}

#[tokio::test]
async fn items_give_key_and_value_and_then_maps_asynchronously() {
    let mut t = TestDriver::with_settings(
        "[app]\nid = \"ops\"\n[agents.double]\nsource.topics = [\"entries\"]\n\
         sinks = [\"doubled\"]\n",
    )
    .unwrap()
    .agent("double", AgentFn::new(async_double))
    .start()
    .await
    .unwrap();
    feed(&t, 0..4).await;
    t.settle().await.unwrap();
    let got: Vec<(Option<String>, u32)> = t.keyed("doubled").await.unwrap();
    let want: Vec<(Option<String>, u32)> = (0..4).map(|i| (Some(i.to_string()), i * 2)).collect();
    assert_eq!(got, want);
}

// ---- take -------------------------------------------------------------------------

/// Writes one record per batch: the ids of the batch.
async fn batches(ctx: AgentContext, stream: Stream<Entry, String>) -> AgentResult {
    let out = ctx.sink(0)?;
    let mut s = stream.take(4, Duration::from_secs(1));
    while let Some(batch) = s.next().await? {
        let ids: Vec<u32> = batch.iter().map(|e| e.value.id).collect();
        ctx.send(out, None::<&str>, &ids).await?;
    }
    Ok(())
}

fn batch_settings(guarantee: &str) -> String {
    format!(
        "[app]\nid = \"ops\"\nprocessing_guarantee = \"{guarantee}\"\n\
         [agents.batches]\nsource.topics = [\"entries\"]\nsinks = [\"batches\"]\n"
    )
}

async fn batch_driver(guarantee: &str) -> TestDriver {
    TestDriver::with_settings(&batch_settings(guarantee))
        .unwrap()
        .agent("batches", AgentFn::new(batches))
        .start()
        .await
        .unwrap()
}

async fn batched_ids(t: &TestDriver) -> BTreeMap<u32, usize> {
    let mut seen = BTreeMap::new();
    for b in t.values::<Vec<u32>>("batches").await.unwrap() {
        for id in b {
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}

#[tokio::test]
async fn take_hands_out_full_batches_and_a_partial_one_after_within() {
    let mut t = batch_driver("at_least_once").await;
    feed(&t, 0..10).await;
    t.settle().await.unwrap();
    let sizes: Vec<usize> = t
        .values::<Vec<u32>>("batches")
        .await
        .unwrap()
        .iter()
        .map(Vec::len)
        .collect();
    // The last two waited for `within` (settling lets virtual time pass for them).
    assert_eq!(sizes, vec![4, 4, 2]);
    let all: Vec<Vec<u32>> = t.values("batches").await.unwrap();
    assert_eq!(all.last().unwrap(), &vec![8, 9]);
    // The last batch is acked when the agent asks for the next one.
    assert_eq!(t.broker.committed("ops-batches", "entries", 0), Some(10));
}

#[tokio::test]
async fn at_least_once_a_crash_under_a_batch_loses_none_of_it() {
    let mut t = batch_driver("at_least_once").await;
    feed(&t, 0..8).await;
    t.settle().await.unwrap();
    t.hold_deliveries();
    feed(&t, 8..16).await;
    t.settle().await.unwrap();
    t.crash().await.unwrap();
    t.advance(Duration::from_secs(2)).await.unwrap();
    let seen = batched_ids(&t).await;
    for id in 0..16 {
        assert!(
            seen.get(&id).is_some_and(|n| *n >= 1),
            "{id} lost: {seen:?}"
        );
    }
    assert!(
        (0..8).all(|id| seen[&id] == 1),
        "committed batches are not redone"
    );
}

#[tokio::test]
async fn exactly_once_a_crash_under_a_batch_repeats_none_of_it() {
    let mut t = batch_driver("exactly_once").await;
    feed(&t, 0..8).await;
    t.settle().await.unwrap();
    t.hold_deliveries();
    feed(&t, 8..16).await;
    t.settle().await.unwrap();
    t.crash().await.unwrap();
    t.advance(Duration::from_secs(2)).await.unwrap();
    let seen = batched_ids(&t).await;
    assert_eq!(seen.len(), 16, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
}

// ---- group_by ---------------------------------------------------------------------

register_table!(PerLine = "per_line", String => u64);

async fn count_per_line(ctx: AgentContext, stream: Stream<Entry, String>) -> AgentResult {
    let counts = ctx.table::<PerLine>()?;
    let mut by_line = stream.group_by(&ctx, "line", |e| e.value.line.clone())?;
    while let Some(e) = by_line.next().await? {
        let line = e.key.unwrap_or_default();
        let n = counts.get(&line).await?.unwrap_or(0) + 1;
        counts.insert(&line, &n).await?;
    }
    Ok(())
}

fn group_settings(guarantee: &str) -> String {
    format!(
        "[app]\nid = \"ops\"\nprocessing_guarantee = \"{guarantee}\"\n\
         [topics.entries]\npartitions = 4\n\
         [agents.per_line]\nsource.topics = [\"entries\"]\n\
         [tables.per_line]\nagent = \"per_line\"\npartitions = 3\n"
    )
}

async fn group_driver(guarantee: &str) -> TestDriver {
    TestDriver::with_settings(&group_settings(guarantee))
        .unwrap()
        .agent("per_line", AgentFn::new(count_per_line).group_by("line"))
        .start()
        .await
        .unwrap()
}

async fn per_line(t: &TestDriver) -> BTreeMap<String, u64> {
    t.table::<PerLine>().await.unwrap().into_iter().collect()
}

#[tokio::test]
async fn group_by_re_keys_through_its_repartition_topic_into_a_co_partitioned_table() {
    let mut t = group_driver("at_least_once").await;
    feed(&t, 0..30).await;
    t.settle().await.unwrap();
    assert_eq!(per_line(&t).await, expected_per_line(30));
    let topic = "ops-per_line-line-repartition";
    assert!(t.topics().contains(&topic.to_string()), "{:?}", t.topics());
    let records = t.records(topic);
    assert_eq!(records.len(), 30);
    // One line, one partition of the repartition topic: the table's partition.
    let mut partition_of: BTreeMap<String, i32> = BTreeMap::new();
    for r in &records {
        let line: String = serde_json::from_slice(r.key.as_deref().unwrap()).unwrap();
        let p = *partition_of.entry(line.clone()).or_insert(r.partition);
        assert_eq!(p, r.partition, "line {line} in two partitions");
    }
}

#[tokio::test]
async fn at_least_once_group_by_counts_at_least_every_event_across_a_crash() {
    let mut t = group_driver("at_least_once").await;
    feed(&t, 0..20).await;
    t.settle().await.unwrap();
    t.hold_deliveries();
    feed(&t, 20..40).await;
    t.settle().await.unwrap();
    t.crash().await.unwrap();
    let got = per_line(&t).await;
    for (line, n) in expected_per_line(40) {
        assert!(got.get(&line).is_some_and(|c| *c >= n), "{line}: {got:?}");
    }
}

#[tokio::test]
async fn exactly_once_group_by_counts_every_event_once_across_a_crash() {
    let mut t = group_driver("exactly_once").await;
    feed(&t, 0..20).await;
    t.settle().await.unwrap();
    t.hold_deliveries();
    feed(&t, 20..40).await;
    t.settle().await.unwrap();
    t.crash().await.unwrap();
    assert_eq!(per_line(&t).await, expected_per_line(40));
}

#[tokio::test]
async fn an_undeclared_group_by_stage_fails_the_agent_and_says_how_to_declare_it() {
    // The agent fails at its start, and again after each backoff: the driver says so.
    let Err(stuck) = TestDriver::with_settings(&group_settings("at_least_once"))
        .unwrap()
        .agent("per_line", AgentFn::new(count_per_line))
        .start()
        .await
    else {
        panic!("the agent ran without its stage declared");
    };
    let error = stuck.to_string();
    assert!(error.contains("agent per_line"), "{error}");
    assert!(error.contains("group_by = [\"line\"]"), "{error}");
}

// ---- through and echo -------------------------------------------------------------

async fn via_audit(ctx: AgentContext, stream: Stream<Entry, String>) -> AgentResult {
    let out = ctx.sink(0)?;
    let mut s = stream.through(&ctx, "audit")?;
    while let Some(e) = s.next().await? {
        ctx.send(out, e.key.as_deref(), &e.value.id).await?;
    }
    Ok(())
}

#[tokio::test]
async fn through_sends_the_stream_round_a_topic_and_goes_on_from_it() {
    let mut t = TestDriver::with_settings(
        "[app]\nid = \"ops\"\n[agents.via]\nsource.topics = [\"entries\"]\n\
         sinks = [\"seen\"]\n",
    )
    .unwrap()
    .agent("via", AgentFn::new(via_audit).through("audit"))
    .start()
    .await
    .unwrap();
    feed(&t, 0..5).await;
    t.settle().await.unwrap();
    assert_eq!(t.values::<Entry>("audit").await.unwrap().len(), 5);
    let mut seen: Vec<u32> = t.values("seen").await.unwrap();
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);
}

async fn echoing(ctx: AgentContext, stream: Stream<Entry, String>) -> AgentResult {
    let mut s = stream.echo(&ctx, &["copy-a", "copy-b"]);
    while s.next().await?.is_some() {}
    Ok(())
}

#[tokio::test]
async fn echo_copies_each_event_to_every_topic_and_acks_after_both() {
    let mut t = TestDriver::with_settings(
        "[app]\nid = \"ops\"\n[agents.echo]\nsource.topics = [\"entries\"]\n\
         sinks = [\"copy-a\", \"copy-b\"]\n",
    )
    .unwrap()
    .agent("echo", AgentFn::new(echoing))
    .start()
    .await
    .unwrap();
    feed(&t, 0..3).await;
    t.settle().await.unwrap();
    for topic in ["copy-a", "copy-b"] {
        let got: Vec<(Option<String>, Entry)> = t.keyed(topic).await.unwrap();
        let want: Vec<(Option<String>, Entry)> =
            (0..3).map(|i| (Some(i.to_string()), entry(i))).collect();
        assert_eq!(got, want);
    }
    t.hold_deliveries();
    feed(&t, 3..4).await;
    t.settle().await.unwrap();
    t.crash().await.unwrap();
    let got: Vec<Entry> = t.values("copy-b").await.unwrap();
    assert!(
        got.iter().any(|e| e.id == 3),
        "the held copy was sent again"
    );
}

// ---- channels ---------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Question {
    station: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Tally {
    Count(Entry),
    Ask(Question),
}

/// Answers how many entries a station had, from its own tally of the channel.
async fn tally(ctx: AgentContext, mut msgs: Stream<Tally, String>) -> AgentResult {
    let mut per_station: BTreeMap<u32, u64> = BTreeMap::new();
    while let Some(e) = msgs.next().await? {
        match e.value {
            Tally::Ask(q) => {
                ctx.reply(&per_station.get(&q.station).copied().unwrap_or(0))?;
            }
            Tally::Count(en) => *per_station.entry(en.station).or_default() += 1,
        }
    }
    Ok(())
}

/// Forwards entries to the tally channel and, for each, asks the station's count.
async fn asker(ctx: AgentContext, mut entries: Stream<Entry, String>) -> AgentResult {
    let tally = ctx.channel("tally");
    let out = ctx.sink(0)?;
    while let Some(e) = entries.next().await? {
        let station = e.value.station.to_string();
        tally
            .send(Some(&station), &Tally::Count(e.value.clone()))
            .await?;
        let q = Tally::Ask(Question {
            station: e.value.station,
        });
        let n: u64 = tally.ask(Some(&station), &q).await?;
        ctx.send(out, Some(&station), &n).await?;
    }
    Ok(())
}

#[tokio::test]
async fn channels_carry_messages_and_requests_between_agents_of_a_worker() {
    let mut t = TestDriver::with_settings(
        "[app]\nid = \"ops\"\n\
         [agents.tally]\nsource.channel = \"tally\"\nconcurrency = 2\n\
         [agents.asker]\nsource.topics = [\"entries\"]\nsinks = [\"answers\"]\n",
    )
    .unwrap()
    .agent("tally", AgentFn::new(tally))
    .agent("asker", AgentFn::new(asker))
    .start()
    .await
    .unwrap();
    feed(&t, 0..14).await;
    t.settle().await.unwrap();
    let answers: Vec<(Option<String>, u64)> = t.keyed("answers").await.unwrap();
    // Station s of ids 0..14 (id % 7): its first entry answers 1, its second 2.
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (station, n) in answers {
        seen.entry(station.unwrap_or_default()).or_default().push(n);
    }
    assert_eq!(seen.len(), 7);
    assert!(seen.values().all(|v| v == &vec![1, 2]), "{seen:?}");
}

#[tokio::test]
async fn sending_to_a_channel_nobody_reads_is_an_error_naming_it() {
    let hub = std::sync::Arc::new(crate::stream::ChannelHub::default());
    let e = hub
        .channel("nowhere")
        .send(None::<&str>, &1)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nowhere"), "{e}");
}

// ---- group_by_many: the word count ------------------------------------------------

register_table!(Words = "words", String => u64);

async fn word_count(ctx: AgentContext, sentences: Stream<String>) -> AgentResult {
    let counts = ctx.table::<Words>()?;
    let mut words = sentences.group_by_many(&ctx, "word", |s| {
        let words = s.value.split_whitespace().map(str::to_lowercase);
        words.map(|w| (w, ())).collect::<Vec<_>>()
    })?;
    while let Some(word) = words.next().await? {
        let word: String = word.key.unwrap_or_default();
        let n = counts.get(&word).await?.unwrap_or(0) + 1;
        counts.insert(&word, &n).await?;
    }
    Ok(())
}

#[tokio::test]
async fn group_by_many_splits_sentences_into_words_counted_in_one_partition_each() {
    for guarantee in ["at_least_once", "exactly_once"] {
        let mut t = TestDriver::with_settings(&format!(
            "[app]\nid = \"wc\"\nprocessing_guarantee = \"{guarantee}\"\n\
             [topics.sentences]\npartitions = 3\n\
             [agents.wc]\nsource.topics = [\"sentences\"]\n\
             [tables.words]\nagent = \"wc\"\npartitions = 2\n"
        ))
        .unwrap()
        .agent("wc", AgentFn::new(word_count).group_by("word"))
        .start()
        .await
        .unwrap();
        let sentences = ["the quick fox", "The lazy dog", "", "the end"];
        for (i, s) in sentences.iter().enumerate() {
            t.send("sentences", Some(&i.to_string()), s).await.unwrap();
        }
        t.settle().await.unwrap();
        let got: BTreeMap<String, u64> = t.table::<Words>().await.unwrap().into_iter().collect();
        let want: BTreeMap<String, u64> = [
            ("the", 3),
            ("quick", 1),
            ("fox", 1),
            ("lazy", 1),
            ("dog", 1),
            ("end", 1),
        ]
        .into_iter()
        .map(|(w, n)| (w.to_string(), n))
        .collect();
        assert_eq!(got, want, "{guarantee}");
        assert_eq!(t.status("wc").unwrap().filtered, 1, "the empty sentence");
    }
}

// ---- joins ------------------------------------------------------------------------

register_table!(Prices = "prices", String => u32);
register_table!(PricesAll = "prices_all", String => u32);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Price {
    item: String,
    cents: u32,
}

async fn pricer(ctx: AgentContext, mut prices: Stream<Price>) -> AgentResult {
    let table = ctx.table::<Prices>()?;
    while let Some(p) = prices.next().await? {
        table.insert(&p.value.item, &p.value.cents).await?;
    }
    Ok(())
}

/// Each order (an item name) with its price, from the global view of `prices`.
async fn priced(ctx: AgentContext, orders: Stream<String>) -> AgentResult {
    use crate::table::JoinTable;
    let prices = ctx.table::<PricesAll>()?;
    let out = ctx.sink(0)?;
    let mut s = orders.join(&prices, |o| o.value.clone());
    while let Some((order, price)) = s.next().await? {
        ctx.send(out, None::<&str>, &(order.value, price)).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_stream_joined_with_a_global_table_sees_its_values_and_misses_as_none() {
    let mut t = TestDriver::with_settings(
        "[app]\nid = \"join\"\n\
         [agents.pricer]\nsource.topics = [\"prices\"]\n\
         [agents.priced]\nsource.topics = [\"orders\"]\nsinks = [\"priced\"]\n\
         [tables.prices]\nagent = \"pricer\"\npartitions = 1\n\
         [tables.prices_all]\nglobal = true\nmirrors = \"prices\"\n",
    )
    .unwrap()
    .agent("pricer", AgentFn::new(pricer))
    .agent("priced", AgentFn::new(priced))
    .start()
    .await
    .unwrap();
    for (item, cents) in [("tea", 250), ("cake", 400)] {
        let p = Price {
            item: item.into(),
            cents,
        };
        t.send("prices", Some(item), &p).await.unwrap();
    }
    t.settle().await.unwrap();
    for item in ["tea", "soup", "cake"] {
        t.send("orders", None::<&str>, &item).await.unwrap();
    }
    t.settle().await.unwrap();
    let got: Vec<(String, Option<u32>)> = t.values("priced").await.unwrap();
    assert_eq!(
        got,
        vec![
            ("tea".into(), Some(250)),
            ("soup".into(), None),
            ("cake".into(), Some(400))
        ]
    );
}
