//! `on_leader` timers on the real broker, with workers as processes: of two workers of an
//! app the timer ticks on one; a leader that is paused past its session is replaced and,
//! resumed, does not tick; a killed leader is replaced within the session timeout; the
//! ticks' numbers never repeat or go back, and no two workers tick at once. The CTA
//! clock, an `on_leader` timer, keeps its simulated time going forward across a take-over.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// The leader election's session timeout in these tests (the broker's minimum is 6 s).
const SESSION: Duration = Duration::from_secs(6);
/// What a take-over may take beyond the session: a heartbeat (a fifth of the session),
/// the rebalance, the first interval of the new leader, a loaded machine.
const MARGIN: Duration = Duration::from_secs(4);

/// A tick as the example `ticker` writes it, keyed by the worker that ticked.
#[derive(Debug, Clone)]
struct Ticked {
    worker: String,
    seq: u64,
    at_ms: i64,
}

/// The records (key, value) of the one-partition `topic` from its start to its end as it
/// is now (the timers keep writing, so "no more records" never comes).
fn read_all(topic: &str, read_committed: bool) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("test-reader"))
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .unwrap();
    let (_, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    // Under read_committed the end may be a transaction marker, never delivered: a later
    // record, or a quiet second, ends the read too.
    let mut quiet = Instant::now();
    while high > 0 && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push((
                    m.key().map(<[u8]>::to_vec),
                    m.payload().unwrap_or_default().to_vec(),
                ));
                if m.offset() >= high - 1 {
                    break;
                }
                quiet = Instant::now();
            }
            _ if quiet.elapsed() > Duration::from_secs(3) => break,
            _ => {}
        }
    }
    out
}

fn ticks(topic: &str) -> Vec<Ticked> {
    read_all(topic, false)
        .into_iter()
        .map(|(k, v)| {
            let v: Value = serde_json::from_slice(&v).unwrap();
            Ticked {
                worker: String::from_utf8(k.unwrap()).unwrap(),
                seq: v["seq"].as_u64().unwrap(),
                at_ms: v["at_ms"].as_i64().unwrap(),
            }
        })
        .collect()
}

fn start_ticker(app: &str, worker: &str, out: &str) -> Worker {
    Worker::start_with(
        app,
        &format!("commit_interval = \"200ms\"\nleader_session_timeout = \"{}s\"\n", SESSION.as_secs()),
        &format!(
            "[agents.ticker]\nsource.timer = \"200ms\"\nsource.on_leader = true\nsinks = [\"{out}\"]\n\
             params = {{ worker = \"{worker}\" }}\n"
        ),
    )
}

/// Whether the worker's `/health` says it leads, for the agent `agent`.
async fn leads(w: &Worker, agent: &str) -> Option<bool> {
    let (_, h) = w.health().await?;
    h["agents"][agent]["leader"]["leader"].as_bool()
}

/// Waits until the last tick on `topic` comes from a worker other than `not`; that worker.
async fn wait_for_ticks_from_other(topic: &str, not: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(last) = ticks(topic).last() {
            if last.worker != not {
                return Some(last.worker.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    None
}

/// The ticks in topic order are the runs of one worker after another: numbers always
/// rising, and each run ending before the next one's first tick.
fn assert_one_at_a_time(all: &[Ticked]) -> Vec<(String, usize)> {
    for w in all.windows(2) {
        assert!(
            w[1].seq > w[0].seq,
            "a number repeated or went back: {:?} then {:?}",
            w[0],
            w[1]
        );
        assert!(
            w[1].at_ms >= w[0].at_ms,
            "ticks out of time order: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let mut runs: Vec<(String, usize)> = Vec::new();
    for t in all {
        match runs.last_mut() {
            Some((w, n)) if *w == t.worker => *n += 1,
            _ => runs.push((t.worker.clone(), 1)),
        }
    }
    runs
}

/// The gap between the last tick of one run and the first of the next, at each change.
fn handovers(all: &[Ticked]) -> Vec<(String, String, Duration)> {
    all.windows(2)
        .filter(|w| w[0].worker != w[1].worker)
        .map(|w| {
            (
                w[0].worker.clone(),
                w[1].worker.clone(),
                Duration::from_millis((w[1].at_ms - w[0].at_ms).max(0) as u64),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_worker_ticks_and_another_takes_over_from_a_paused_or_killed_leader() {
    require_broker();
    let app = unique("leader");
    let out = format!("{app}-ticks");
    let mut a = start_ticker(&app, "a", &out);
    a.wait_healthy(Duration::from_secs(60)).await;
    let mut b = start_ticker(&app, "b", &out);
    b.wait_healthy(Duration::from_secs(60)).await;
    // B's joining may move the leadership once; then it stays.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = ticks(&out);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = ticks(&out);
    assert!(
        after.len() >= before.len() + 8,
        "ticking goes on: {} then {}",
        before.len(),
        after.len()
    );
    let fresh = &after[before.len()..];
    let leader = fresh[0].worker.clone();
    assert!(
        fresh.iter().all(|t| t.worker == leader),
        "two workers ticked in the same 3 s: {fresh:?}\n{}\n{}",
        a.log_text(),
        b.log_text()
    );
    let (leading, mut following) = if leader == "a" { (a, b) } else { (b, a) };
    let follower = if leader == "a" { "b" } else { "a" };
    assert_eq!(leads(&leading, "ticker").await, Some(true));
    assert_eq!(leads(&following, "ticker").await, Some(false));
    let metrics = reqwest::get(leading.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("cta_stream_agent_leader{agent=\"ticker\"} 1"),
        "{metrics}"
    );

    // Paused past its session: the follower takes over; resumed, the old leader is fenced.
    leading.signal("STOP");
    let paused = Instant::now();
    let took_over =
        wait_for_ticks_from_other(&out, &leader, SESSION + MARGIN + Duration::from_secs(10)).await;
    assert_eq!(
        took_over.as_deref(),
        Some(follower),
        "no take-over from a paused leader\n{}",
        following.log_text()
    );
    let took = paused.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    leading.signal("CONT");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = ticks(&out);
    let runs = assert_one_at_a_time(&all);
    assert_eq!(
        runs.last().map(|(w, _)| w.as_str()),
        Some(follower),
        "the resumed leader ticked again: {runs:?}\n{}",
        leading.log_text()
    );
    eprintln!("take-over from the paused leader seen after {took:?}; runs {runs:?}");
    assert!(
        took <= SESSION + MARGIN + Duration::from_secs(2),
        "take-over from a paused leader took {took:?}"
    );
    let resumed = leading.log_text();
    assert!(resumed.contains("no longer the app's leader"), "{resumed}");
    assert_eq!(
        leads(&leading, "ticker").await,
        Some(false),
        "{}",
        leading.log_text()
    );

    // Killed: the resumed worker (a follower now) takes over within the session.
    let count_before_kill = all.len();
    following.kill9();
    let back =
        wait_for_ticks_from_other(&out, follower, SESSION + MARGIN + Duration::from_secs(10)).await;
    assert_eq!(
        back.as_deref(),
        Some(leader.as_str()),
        "no take-over from a killed leader\n{}",
        leading.log_text()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = ticks(&out);
    assert!(all.len() > count_before_kill);
    let runs = assert_one_at_a_time(&all);
    let changes = handovers(&all);
    let (from, to, gap) = changes.last().cloned().unwrap();
    assert_eq!(
        (from.as_str(), to.as_str()),
        (follower, leader.as_str()),
        "{runs:?}"
    );
    assert!(
        gap <= SESSION + MARGIN,
        "the take-over from a killed leader took {gap:?} between ticks (session {SESSION:?}): {changes:?}"
    );
    assert!(
        gap >= Duration::from_millis(200),
        "ticks overlapped at the take-over: {changes:?}"
    );
    eprintln!("hand-overs (from, to, gap between their ticks): {changes:?}");
    assert_eq!(leads(&leading, "ticker").await, Some(true));
}

/// The CTA clock's simulated time on its topic goes forward across a take-over.
#[tokio::test(flavor = "multi_thread")]
async fn the_cta_clock_goes_on_from_the_last_step_when_its_leader_dies() {
    require_broker();
    let app = unique("ctalead");
    let clock = format!("{app}.clock");
    let start = || {
        Worker::start_with(
            &app,
            &format!(
                "commit_interval = \"200ms\"\nprocessing_guarantee = \"exactly_once\"\n\
                 leader_session_timeout = \"{}s\"\n",
                SESSION.as_secs()
            ),
            &format!(
                "[agents.cta_clock]\nsource.timer = \"5s\"\nsource.speedup = 25\nsource.on_leader = true\n\
                 sinks = [\"{clock}\"]\nparams = {{ step = \"5m\", start = \"2026-11-23T08:00:00Z\" }}\n"
            ),
        )
    };
    let mut a = start();
    a.wait_healthy(Duration::from_secs(60)).await;
    let mut b = start();
    b.wait_healthy(Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let a_leads = leads(&a, "cta_clock").await == Some(true);
    let b_leads = leads(&b, "cta_clock").await == Some(true);
    assert!(a_leads ^ b_leads, "one leader: a {a_leads}, b {b_leads}");
    let (mut leading, following) = if a_leads { (a, b) } else { (b, a) };
    let read = || {
        read_all(&clock, true)
            .into_iter()
            .map(|(_, v)| serde_json::from_slice::<Value>(&v).unwrap())
            .collect::<Vec<_>>()
    };
    let before = read().len();
    assert!(before >= 10, "the clock ticks: {before}");
    leading.kill9();
    let killed = Instant::now();
    // The new leader ticks within the session; its records show once the dead leader's
    // open transaction is aborted (transaction.timeout.ms, 10 s).
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut ticks = read();
    while ticks.len() < before + 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ticks = read();
    }
    assert!(
        ticks.len() >= before + 20,
        "the clock stopped after the kill ({} ticks)\n{}",
        ticks.len(),
        following.log_text()
    );
    assert_eq!(leads(&following, "cta_clock").await, Some(true));
    let sim: Vec<i64> = ticks
        .iter()
        .map(|t| t["sim_time_ms"].as_i64().unwrap())
        .collect();
    let steps: Vec<u64> = ticks.iter().map(|t| t["step"].as_u64().unwrap()).collect();
    for (i, w) in sim.windows(2).enumerate() {
        assert!(
            w[1] > w[0],
            "simulated time repeated or went back at {i}: {:?}",
            &ticks[i..i + 2]
        );
        assert_eq!((w[1] - w[0]) % 300_000, 0, "steps of 5 simulated minutes");
    }
    assert!(steps.windows(2).all(|w| w[1] > w[0]), "{steps:?}");
    // At most the step the dead leader had recorded and not published is missing.
    let gaps = steps.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert!(gaps <= 1, "{steps:?}");
    let emitted = ticks
        .iter()
        .map(|t| t["emitted_ms"].as_i64().unwrap())
        .collect::<Vec<_>>();
    let gap_ms = emitted.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    eprintln!(
        "the clock's longest pause: {gap_ms} ms; {} ticks, steps {:?}..{:?}",
        ticks.len(),
        steps.first(),
        steps.last()
    );
    assert!(
        Duration::from_millis(gap_ms as u64) <= SESSION + MARGIN,
        "the clock stood still for {gap_ms} ms (session {SESSION:?}); killed {:?} ago",
        killed.elapsed()
    );
}
