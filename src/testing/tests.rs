//! The runtime's guarantees, checked through the driver: one test per fault kind, under
//! each processing guarantee. At-least-once: every input has its output (duplicates
//! allowed). Exactly-once: every input has exactly one output, and a count in a table
//! equals the number of inputs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::TestDriver;
use crate::agent::{AgentContext, AgentFn, AgentResult};
use crate::register_table;
use crate::stream::{Stream, Tick};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Order {
    id: u32,
    shop: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Counted {
    id: u32,
    shop: String,
    count: u64,
}

register_table!(ShopCounts = "shop_counts", String => u64);

/// Counts orders per shop in a table and writes each order with its shop's count.
async fn count_orders(ctx: AgentContext, mut orders: Stream<Order>) -> AgentResult {
    let counts = ctx.table::<ShopCounts>()?;
    let out = ctx.sink(0)?;
    while let Some(e) = orders.next().await? {
        let o = e.value;
        let count = counts.get(&o.shop).await?.unwrap_or(0) + 1;
        counts.insert(&o.shop, &count).await?;
        let rec = Counted {
            id: o.id,
            shop: o.shop.clone(),
            count,
        };
        ctx.send(out, Some(o.shop.as_str()), &rec).await?;
    }
    Ok(())
}

/// Fails on an order with id 0 (a poison record) and counts timer ticks elsewhere.
async fn picky(ctx: AgentContext, mut orders: Stream<Order>) -> AgentResult {
    while let Some(e) = orders.next().await? {
        anyhow::ensure!(e.value.id != 0, "order 0 is poison");
        ctx.send(ctx.sink(0)?, None::<&str>, &e.value).await?;
    }
    Ok(())
}

async fn ticker(ctx: AgentContext, mut ticks: Stream<Tick>) -> AgentResult {
    while let Some(t) = ticks.next().await? {
        ctx.send(ctx.sink(0)?, None::<&str>, &t.value.n).await?;
    }
    Ok(())
}

fn settings(guarantee: &str, extra: &str) -> String {
    format!(
        "[app]\nid = \"shop\"\nprocessing_guarantee = \"{guarantee}\"\n\
         [topics.orders]\npartitions = 3\n\
         [agents.count_orders]\nsource.topics = [\"orders\"]\nsinks = [\"counted\"]\n\
         from_beginning = true\n\
         [tables.shop_counts]\nagent = \"count_orders\"\npartitions = 3\n{extra}"
    )
}

async fn driver(guarantee: &str) -> TestDriver {
    TestDriver::with_settings(&settings(guarantee, ""))
        .unwrap()
        .agent("count_orders", AgentFn::new(count_orders))
        .start()
        .await
        .unwrap()
}

const SHOPS: [&str; 4] = ["north", "south", "east", "west"];

async fn feed(t: &TestDriver, ids: std::ops::Range<u32>) {
    for id in ids {
        let shop = SHOPS[id as usize % SHOPS.len()];
        t.send(
            "orders",
            Some(shop),
            &Order {
                id,
                shop: shop.into(),
            },
        )
        .await
        .unwrap();
    }
}

/// How many times each order id came out.
async fn outputs(t: &TestDriver) -> BTreeMap<u32, usize> {
    let mut seen = BTreeMap::new();
    for c in t.values::<Counted>("counted").await.unwrap() {
        *seen.entry(c.id).or_default() += 1;
    }
    seen
}

/// The final count of each shop in the table.
async fn counts(t: &TestDriver) -> BTreeMap<String, u64> {
    t.table::<ShopCounts>().await.unwrap().into_iter().collect()
}

fn expected_counts(n: u32) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for id in 0..n {
        *m.entry(SHOPS[id as usize % SHOPS.len()].to_string())
            .or_default() += 1;
    }
    m
}

fn nothing_lost(seen: &BTreeMap<u32, usize>, n: u32) {
    for id in 0..n {
        assert!(
            seen.get(&id).is_some_and(|c| *c >= 1),
            "order {id} lost: {seen:?}"
        );
    }
}

fn each_once(seen: &BTreeMap<u32, usize>, n: u32) {
    assert_eq!(seen.len(), n as usize, "{seen:?}");
    assert!(
        seen.values().all(|c| *c == 1),
        "an order came out twice: {seen:?}"
    );
}

#[tokio::test]
async fn records_flow_through_an_agent_and_its_table() {
    let mut t = driver("at_least_once").await;
    feed(&t, 0..20).await;
    t.settle().await.unwrap();
    each_once(&outputs(&t).await, 20);
    assert_eq!(counts(&t).await, expected_counts(20));
    let s = t.status("count_orders").unwrap();
    assert_eq!(s.events_in, 20);
}

#[tokio::test]
async fn at_least_once_a_crash_between_produce_and_ack_loses_nothing() {
    let mut t = driver("at_least_once").await;
    feed(&t, 0..10).await;
    t.settle().await.unwrap();
    t.hold_deliveries();
    feed(&t, 10..20).await;
    t.settle().await.unwrap();
    // Orders 10..20 are processed, their records in the topic, none acked.
    t.crash().await.unwrap();
    let seen = outputs(&t).await;
    nothing_lost(&seen, 20);
    assert!(
        (10..20).any(|id| seen[&id] == 2),
        "the crash fell between produce and ack, so some orders came out again: {seen:?}"
    );
    assert!(
        (0..10).all(|id| seen[&id] == 1),
        "committed work is not redone"
    );
    for (shop, n) in expected_counts(20) {
        assert!(counts(&t).await[&shop] >= n, "{shop}");
    }
}

#[tokio::test]
async fn exactly_once_a_crash_between_produce_and_ack_repeats_nothing() {
    let mut t = driver("exactly_once").await;
    feed(&t, 0..10).await;
    t.settle().await.unwrap();
    t.hold_deliveries();
    feed(&t, 10..20).await;
    t.settle().await.unwrap();
    t.crash().await.unwrap();
    each_once(&outputs(&t).await, 20);
    assert_eq!(counts(&t).await, expected_counts(20));
}

#[tokio::test]
async fn at_least_once_a_partition_revoked_mid_event_loses_nothing() {
    let mut t = driver("at_least_once").await;
    feed(&t, 0..30).await;
    t.hold_deliveries();
    t.settle().await.unwrap();
    for p in 0..3 {
        t.revoke("orders", p);
    }
    t.release_deliveries();
    t.settle().await.unwrap();
    let seen = outputs(&t).await;
    nothing_lost(&seen, 30);
    assert!(
        seen.values().any(|c| *c > 1),
        "revoked events were processed again"
    );
    assert_eq!(t.status("count_orders").unwrap().revocations, 3);
}

#[tokio::test]
async fn exactly_once_a_partition_revoked_mid_event_repeats_nothing() {
    let mut t = driver("exactly_once").await;
    feed(&t, 0..30).await;
    t.hold_deliveries();
    t.settle().await.unwrap();
    for p in 0..3 {
        t.revoke("orders", p);
    }
    t.release_deliveries();
    t.settle().await.unwrap();
    each_once(&outputs(&t).await, 30);
    assert_eq!(counts(&t).await, expected_counts(30));
    assert!(
        t.transactions().1 >= 1,
        "the revoke aborted the open transaction"
    );
}

#[tokio::test]
async fn exactly_once_an_aborted_transaction_is_redone_once() {
    let mut t = driver("exactly_once").await;
    feed(&t, 0..12).await;
    t.settle().await.unwrap();
    t.hold_deliveries();
    feed(&t, 12..24).await;
    t.settle().await.unwrap();
    t.abort_transaction().await;
    t.release_deliveries();
    t.settle().await.unwrap();
    each_once(&outputs(&t).await, 24);
    assert_eq!(counts(&t).await, expected_counts(24));
    let (committed, aborted) = t.transactions();
    assert!(committed >= 2 && aborted == 1, "{committed} {aborted}");
    // What the aborted transaction wrote is in the topic, skipped by readers.
    assert!(t.broker.end("counted", 0) + t.broker.end("counted", 1) > 0);
}

#[tokio::test]
async fn at_least_once_failed_deliveries_send_their_events_round_again() {
    let mut t = driver("at_least_once").await;
    t.fail_deliveries("counted", 3);
    feed(&t, 0..15).await;
    t.settle().await.unwrap();
    nothing_lost(&outputs(&t).await, 15);
    let s = t.status("count_orders").unwrap();
    assert_eq!(s.delivery_errors, 3);
    assert!(s.rewinds >= 1);
}

#[tokio::test]
async fn undecodable_records_are_dead_lettered_and_the_rest_flows() {
    let toml = settings("at_least_once", "").replace(
        "from_beginning = true\n",
        "from_beginning = true\non_error = \"dead-letter\"\n",
    );
    let mut t = TestDriver::with_settings(&toml)
        .unwrap()
        .agent("count_orders", AgentFn::new(count_orders))
        .start()
        .await
        .unwrap();
    feed(&t, 0..3).await;
    t.send_raw("orders", Some(b"north"), Some(b"{not json"))
        .unwrap();
    feed(&t, 3..6).await;
    t.settle().await.unwrap();
    each_once(&outputs(&t).await, 6);
    let dead = t.dead_letters("count_orders");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"{not json"[..]));
}

#[tokio::test]
async fn a_failing_agent_restarts_after_its_backoff_in_virtual_time() {
    let mut t = TestDriver::with_settings(
        "[app]\nid = \"p\"\n[agents.picky]\nsource.topics = [\"orders\"]\nsinks = [\"ok\"]\n\
         on_error = \"skip\"\n",
    )
    .unwrap()
    .agent("picky", AgentFn::new(picky))
    .start()
    .await
    .unwrap();
    for id in [1, 0, 2] {
        t.send(
            "orders",
            None::<&str>,
            &Order {
                id,
                shop: "x".into(),
            },
        )
        .await
        .unwrap();
    }
    let wall = std::time::Instant::now();
    t.settle().await.unwrap();
    let ids: Vec<u32> = t
        .values::<Order>("ok")
        .await
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, vec![1, 2]);
    let s = t.status("picky").unwrap();
    assert_eq!((s.restarts, s.skipped), (1, 1));
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "the backoff passed in virtual time"
    );
}

#[tokio::test]
async fn timers_fire_as_virtual_time_advances() {
    let mut t = TestDriver::with_settings(
        "[app]\nid = \"c\"\n[agents.ticker]\nsource.timer = \"5s\"\nsinks = [\"ticks\"]\n",
    )
    .unwrap()
    .agent("ticker", AgentFn::new(ticker))
    .start()
    .await
    .unwrap();
    t.settle().await.unwrap();
    assert!(t.records("ticks").is_empty());
    t.advance(Duration::from_secs(61)).await.unwrap();
    let ticks: Vec<u64> = t.values("ticks").await.unwrap();
    assert_eq!(ticks, (0..12).collect::<Vec<u64>>());
}

/// Writes each tick as it came.
async fn tick_log(ctx: AgentContext, mut ticks: Stream<Tick>) -> AgentResult {
    while let Some(t) = ticks.next().await? {
        ctx.send(ctx.sink(0)?, None::<&str>, &t.value).await?;
    }
    Ok(())
}

#[tokio::test]
async fn on_leader_cron_and_interval_timers_fire_under_the_driver() {
    // 01:59:30 in Chicago, half a minute before the spring change: the next hour is 03:00.
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-08T07:59:30Z")
        .unwrap()
        .timestamp_millis();
    let mut t = TestDriver::with_settings(
        "[app]\nid = \"c\"\n\
         [agents.hourly]\nfunction = \"tick_log\"\nsource.cron = \"0 * * * *\"\n\
         source.timezone = \"America/Chicago\"\nsource.on_leader = true\nsinks = [\"hourly\"]\n\
         [agents.beat]\nfunction = \"tick_log\"\nsource.timer = \"5s\"\nsource.on_leader = true\n\
         sinks = [\"beats\"]\n",
    )
    .unwrap()
    .agent("tick_log", AgentFn::new(tick_log))
    .wall_clock_at(start)
    .start()
    .await
    .unwrap();
    t.advance(Duration::from_secs(41)).await.unwrap();
    let hourly: Vec<Tick> = t.values("hourly").await.unwrap();
    assert_eq!(hourly.len(), 1, "{hourly:?}");
    let three_am_cdt = start + 30_000;
    assert_eq!(
        (hourly[0].n, hourly[0].seq, hourly[0].scheduled_ms),
        (0, 0, Some(three_am_cdt))
    );
    assert!((three_am_cdt..three_am_cdt + 100).contains(&hourly[0].at_ms));
    let beats: Vec<Tick> = t.values("beats").await.unwrap();
    assert_eq!(
        beats.iter().map(|b| (b.n, b.seq)).collect::<Vec<_>>(),
        (0..8).map(|i| (i, i)).collect::<Vec<_>>()
    );
    let status = t.status("beat").unwrap();
    assert!(status.leader.is_some_and(|l| l.leader), "{status:?}");

    // A new process: `n` starts again, the app-wide `seq` goes on.
    t.crash().await.unwrap();
    t.advance(Duration::from_secs(11)).await.unwrap();
    let beats: Vec<Tick> = t.values("beats").await.unwrap();
    assert_eq!(
        beats[8..].iter().map(|b| (b.n, b.seq)).collect::<Vec<_>>(),
        [(0, 8), (1, 9)]
    );
}
