//! Windowed tables on the real broker, compared with a brute-force model: a random
//! stream of keyed records with explicit timestamps, out of order and some late beyond
//! the grace, over a multi-partition topic, counted per key and window by the example
//! agent `count_windows` (with `on_error = "dead-letter"`), while workers are SIGKILLed
//! mid-stream and partitions move between two workers. Once the stream is processed the
//! table is read over HTTP and compared window by window with the model, the stream
//! times with the model's, and the dead letters with the model's late events.
//!
//! The stream and the kill moments come from a seed, printed; `WINDOWS_SEED=<n>` repeats
//! a run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use common::*;

const AGENT: &str = "count_windows";
const TABLE: &str = "window_counts";

// ---- the stream -------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tumbling,
    Hopping,
    Sliding,
}

/// A window setting, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Win {
    kind: Kind,
    size: i64,
    step: i64,
    grace: i64,
    expires: i64,
}

impl Win {
    /// A random window of `kind`: sizes of a few hundred ms against a stream that moves
    /// about 20 ms per record, so windows hold several records, some records fall within
    /// the grace and some beyond, and some windows expire while others remain.
    fn random(kind: Kind, rng: &mut impl Rng) -> Win {
        let (size, step) = match kind {
            Kind::Tumbling => {
                let size = rng.random_range(100..=400);
                (size, size)
            }
            Kind::Hopping => {
                let size = rng.random_range(100..=400);
                (size, rng.random_range(size / 4..=size))
            }
            Kind::Sliding => {
                // The size a multiple of the step.
                let step = rng.random_range(20..=80);
                (step * rng.random_range(2..=6), step)
            }
        };
        let grace = rng.random_range(0..=size);
        Win {
            kind,
            size,
            step,
            grace,
            expires: grace + rng.random_range(0..=4000),
        }
    }

    fn toml(&self) -> String {
        let kind = match self.kind {
            Kind::Tumbling => "tumbling",
            Kind::Hopping => "hopping",
            Kind::Sliding => "sliding",
        };
        let step = match self.kind {
            Kind::Tumbling => String::new(),
            _ => format!(", step = \"{}ms\"", self.step),
        };
        format!(
            "{{ kind = \"{kind}\", size = \"{}ms\"{step}, grace = \"{}ms\", expires = \"{}ms\" }}",
            self.size, self.grace, self.expires
        )
    }
}

/// A record: `time` is its timestamp (its event time), `partition` where it is produced.
#[derive(Debug, Clone)]
struct Event {
    id: u64,
    key: String,
    partition: i32,
    time: i64,
}

/// `n` records over `keys` keys, each key in one partition of `partitions`, moving
/// forward in time from `base` with three in ten going back: within the grace (out of
/// order) or beyond it (late), by up to twice size + grace.
fn stream(
    rng: &mut impl Rng,
    w: &Win,
    n: usize,
    keys: usize,
    partitions: i32,
    base: i64,
) -> Vec<Event> {
    let mut now = base;
    (0..n)
        .map(|i| {
            now += rng.random_range(0..40);
            let time = if rng.random_bool(0.3) {
                now - rng.random_range(0..2 * (w.size + w.grace))
            } else {
                now
            };
            let k = rng.random_range(0..keys);
            Event {
                id: i as u64,
                key: format!("k{k:02}"),
                partition: (k as i32) % partitions,
                time,
            }
        })
        .collect()
}

/// Puts a record far back in time at the start of `part` for each partition: with a
/// stream time near the part's first record, it is late (the model says). A worker that
/// took a partition over, or started again, gets such a record first, so that what it
/// knew of the partition's stream time is put to the test at once.
fn probe_late(part: &mut Vec<Event>, w: &Win, partitions: i32) {
    let Some(first) = part.first() else { return };
    let time = first.time - 3 * (w.size + w.grace) - 200;
    let probes = (0..partitions).map(|p| Event {
        id: 0,
        key: format!("k{p:02}"),
        partition: p,
        time,
    });
    part.splice(0..0, probes.collect::<Vec<_>>());
}

// ---- the reference model ----------------------------------------------------------------

/// The documented semantics written naively (as src/testing/window_tests.rs's model):
/// per partition the stream time is the highest event time seen; an event goes into each
/// stored window holding it that is not closed (start + size + grace > stream time), and
/// when there is none it is late; a stored window is gone once start + size + expires <=
/// its partition's stream time. A sliding table stores buckets of `step`.
struct Model {
    w: Win,
    stream_time: BTreeMap<i32, i64>,
    /// (partition, key, stored window start) → count.
    windows: BTreeMap<(i32, String, i64), u64>,
    late: BTreeSet<u64>,
}

impl Model {
    fn new(w: Win) -> Self {
        Self {
            w,
            stream_time: BTreeMap::new(),
            windows: BTreeMap::new(),
            late: BTreeSet::new(),
        }
    }

    fn span(&self) -> i64 {
        if self.w.kind == Kind::Sliding {
            self.w.step
        } else {
            self.w.size
        }
    }

    fn grid(&self) -> i64 {
        if self.w.kind == Kind::Tumbling {
            self.w.size
        } else {
            self.w.step
        }
    }

    /// Starts of the stored windows holding `t`: every start on the grid, tried one by
    /// one.
    fn stored_windows_of(&self, t: i64) -> Vec<i64> {
        let span = self.span();
        ((t - span - self.grid())..=t)
            .filter(|s| s.rem_euclid(self.grid()) == 0 && t < s + span)
            .collect()
    }

    fn feed(&mut self, e: &Event) {
        let st = self
            .stream_time
            .get(&e.partition)
            .map_or(e.time, |s| (*s).max(e.time));
        let open: Vec<i64> = self
            .stored_windows_of(e.time)
            .into_iter()
            .filter(|s| s + self.w.size + self.w.grace > st)
            .collect();
        if open.is_empty() {
            self.late.insert(e.id);
            return;
        }
        self.stream_time.insert(e.partition, st);
        for s in open {
            *self
                .windows
                .entry((e.partition, e.key.clone(), s))
                .or_default() += 1;
        }
    }

    /// Every key's windows that are not expired, `(start, end, count)` oldest first; keys
    /// with none left out (as the table's pages do).
    fn table(&self) -> BTreeMap<String, Vec<(i64, i64, u64)>> {
        let mut out: BTreeMap<String, Vec<(i64, i64, u64)>> = BTreeMap::new();
        for ((p, key, start), n) in &self.windows {
            let st = self.stream_time[p];
            if start + self.w.size + self.w.expires <= st {
                continue;
            }
            out.entry(key.clone())
                .or_default()
                .push((*start, start + self.span(), *n));
        }
        out
    }
}

// ---- the broker and the workers ---------------------------------------------------------

fn settings(input: &str, partitions: i32, w: &Win, delay_ms: u64) -> String {
    format!(
        "[topics.\"{input}\"]\npartitions = {partitions}\n\
         [agents.{AGENT}]\nsource.topics = [\"{input}\"]\ncodec = \"raw\"\n\
         on_error = \"dead-letter\"\n\
         [agents.{AGENT}.params]\ndelay_ms = {delay_ms}\n\
         [tables.{TABLE}]\nagent = \"{AGENT}\"\npartitions = {partitions}\nwindow = {}\n\
         [store]\nflush_interval = \"500ms\"\n",
        w.toml()
    )
}

fn app_toml(guarantee: &str) -> String {
    format!("processing_guarantee = \"{guarantee}\"\ncommit_interval = \"100ms\"\n")
}

/// An idempotent producer: the records of a partition keep the order they were sent in,
/// which is the order the model folds them in.
fn ordered_producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Produces `events` to their partitions with their timestamps; the value is the id.
async fn produce_events(p: &FutureProducer, topic: &str, events: &[Event]) {
    let mut pending = Vec::new();
    for e in events {
        let id = e.id.to_string();
        let rec = FutureRecord::to(topic)
            .partition(e.partition)
            .key(&e.key)
            .payload(&id)
            .timestamp(e.time);
        pending.push(p.send_result(rec).map_err(|(e, _)| e).unwrap());
    }
    for d in pending {
        d.await.unwrap().unwrap();
    }
}

/// The agent's committed offsets on `topic`'s partitions (0 when none yet).
fn committed_offsets(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    // A loaded broker may not answer in time: ask again rather than fail the test.
    let mut tries = 0;
    let got = loop {
        match c.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(got) => break got,
            Err(e) if tries < 5 => {
                eprintln!("committed offsets of {group}: {e}; asking again");
                tries += 1;
            }
            Err(e) => panic!("committed offsets of {group}: {e}"),
        }
    };
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        })
        .collect()
}

/// Waits until the agent has committed at least `records` records of `topic` in all.
async fn wait_committed(
    group: &str,
    topic: &str,
    partitions: i32,
    records: i64,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let offsets = committed_offsets(group, topic, partitions);
        if offsets.iter().sum::<i64>() >= records {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{records} records not committed after {timeout:?}: {offsets:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the agent has committed every record produced: `ends[p]` of each
/// partition.
async fn wait_all_committed(group: &str, topic: &str, ends: &[i64], workers: &[&Worker]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let offsets = committed_offsets(group, topic, ends.len() as i32);
        if offsets.as_slice() == ends {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = workers.iter().map(|w| w.log_text()).collect();
            panic!(
                "committed {offsets:?}, produced {ends:?}\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The records produced to each partition: the end offsets once all are processed.
fn ends(events: &[Event], partitions: i32) -> Vec<i64> {
    (0..partitions)
        .map(|p| events.iter().filter(|e| e.partition == p).count() as i64)
        .collect()
}

/// The table's entry of `GET /tables`.
async fn table_info(w: &Worker) -> Value {
    let (code, list) = get_json(&w.url("/tables")).await;
    assert_eq!(code, 200, "{list}");
    list["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == TABLE)
        .cloned()
        .unwrap_or_else(|| panic!("no table {TABLE} in {list}"))
}

/// The partitions `w` holds, once each has recovered.
async fn held_ready(w: &Worker) -> Option<Vec<i64>> {
    let t = table_info(w).await;
    let held = t["held"].as_array()?;
    held.iter()
        .all(|h| h["recovery"]["state"] == "ready")
        .then(|| {
            held.iter()
                .map(|h| h["partition"].as_i64().unwrap())
                .collect()
        })
}

/// Waits until `w` holds exactly `want`'s partitions (every one recovered).
async fn wait_held(w: &Worker, want: impl Fn(&[i64]) -> bool, what: &str) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(h) = held_ready(w).await {
            if want(&h) {
                return h;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: holds {:?}\n{}",
            held_ready(w).await,
            w.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The whole table as `GET /tables/<name>` pages it: key → (start, end, count).
async fn table_content(w: &Worker) -> BTreeMap<String, Vec<(i64, i64, u64)>> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = w.url(&format!("/tables/{TABLE}?limit=7"));
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let (code, page) = get_json(&url).await;
        assert_eq!(code, 200, "{page}");
        for e in page["entries"].as_array().unwrap() {
            let windows = e["windows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| {
                    (
                        w["start"].as_i64().unwrap(),
                        w["end"].as_i64().unwrap(),
                        w["value"].as_u64().unwrap(),
                    )
                })
                .collect();
            let key = e["key"].as_str().unwrap().to_string();
            assert!(out.insert(key, windows).is_none(), "a key on two pages");
        }
        match page["next_after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => return out,
        }
    }
}

/// The stream time of each partition `w` holds, from `GET /tables`.
async fn stream_times(w: &Worker) -> BTreeMap<i32, i64> {
    let t = table_info(w).await;
    t["held"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| Some((h["partition"].as_i64()? as i32, h["stream_time"].as_i64()?)))
        .collect()
}

/// The ids of the dead letters of the agent, read committed (aborted transactions'
/// records left out), each with its `dlq.error.kind`. Reads until nothing came for a
/// while after `at_least` arrived.
fn dead_letters(topic: &str, at_least: usize) -> Vec<(u64, String)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("test-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_since = Instant::now();
    let mut out = Vec::new();
    while Instant::now() < deadline {
        if out.len() >= at_least && quiet_since.elapsed() > Duration::from_secs(2) {
            break;
        }
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            quiet_since = Instant::now();
            let id = std::str::from_utf8(m.payload().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            let kind = m
                .headers()
                .and_then(|hs| {
                    hs.iter()
                        .find(|h| h.key == "dlq.error.kind")
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
                .unwrap_or_default();
            out.push((id, kind));
        }
    }
    out
}

fn seed() -> u64 {
    let seed: u64 = std::env::var("WINDOWS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("stream and kill moments from seed {seed} (WINDOWS_SEED to repeat)");
    seed
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// What a run promises of the table, given the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Promise {
    /// Exactly-once: every window's count, the stream times and the dead letters are
    /// the model's exactly.
    Exact,
    /// At-least-once: a record processed again after a crash counts again (or, its
    /// windows closed by then, is dead-lettered again), so each window's count is at
    /// least the model's and the dead letters hold at least the model's late records.
    /// The windows themselves (which keys, which starts) and the stream times are the
    /// model's exactly: a record processed again can only go into windows it went into
    /// the first time (the stream time is no lower now), and moves no stream time past
    /// where the later records it was followed by had moved it.
    AtLeast,
}

/// Compares what the worker `w`, holding every partition, shows with the model.
async fn check(w: &Worker, m: &Model, dlq: &str, promise: Promise, seed: u64) {
    let want = m.table();
    // The last transaction committed the offsets with the writes; what a page shows may
    // lag the commit by a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = table_content(w).await;
    while !same(&got, &want, promise) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        got = table_content(w).await;
    }
    if !same(&got, &want, promise) {
        let keys: BTreeSet<&String> = got.keys().chain(want.keys()).collect();
        let mut diff = String::new();
        for k in keys {
            if got.get(k) != want.get(k) {
                diff.push_str(&format!(
                    "{k}:\n  table {:?}\n  model {:?}\n",
                    got.get(k),
                    want.get(k)
                ));
            }
        }
        panic!(
            "seed {seed}, {promise:?}, window {:?}: the table differs from the model\n{diff}\n{}",
            m.w,
            w.log_text()
        );
    }
    if promise == Promise::AtLeast {
        let over = got
            .values()
            .flatten()
            .zip(want.values().flatten())
            .filter(|(g, w)| g.2 > w.2)
            .count();
        eprintln!("at-least-once: {over} window(s) counted more than the model");
    }
    assert!(
        want.values().map(Vec::len).sum::<usize>() >= 5,
        "seed {seed}: too few windows left to compare ({want:?})"
    );
    assert_eq!(
        stream_times(w).await,
        m.stream_time,
        "seed {seed}: the stream time of each partition"
    );
    let info = table_info(w).await;
    assert_eq!(info["window"]["size_ms"], m.w.size);
    assert_eq!(info["window"]["grace_ms"], m.w.grace);

    let letters = dead_letters(dlq, m.late.len());
    assert!(
        letters.iter().all(|(_, kind)| kind == "late"),
        "seed {seed}: {letters:?}"
    );
    let ids: Vec<u64> = letters.iter().map(|(id, _)| *id).collect();
    let set: BTreeSet<u64> = ids.iter().copied().collect();
    match promise {
        Promise::Exact => {
            assert_eq!(set, m.late, "seed {seed}: the late records, dead-lettered");
            assert_eq!(ids.len(), set.len(), "seed {seed}: each dead-lettered once");
        }
        Promise::AtLeast => {
            eprintln!(
                "at-least-once: {} dead letter(s) beyond the model's late records",
                ids.len().saturating_sub(m.late.len())
            );
            assert!(
                set.is_superset(&m.late),
                "seed {seed}: late records not dead-lettered: {:?}",
                m.late.difference(&set).collect::<Vec<_>>()
            )
        }
    }
}

fn same(
    got: &BTreeMap<String, Vec<(i64, i64, u64)>>,
    want: &BTreeMap<String, Vec<(i64, i64, u64)>>,
    promise: Promise,
) -> bool {
    match promise {
        Promise::Exact => got == want,
        Promise::AtLeast => {
            got.len() == want.len()
                && got.iter().zip(want).all(|((gk, gw), (wk, ww))| {
                    gk == wk
                        && gw.len() == ww.len()
                        && gw
                            .iter()
                            .zip(ww)
                            .all(|(g, w)| g.0 == w.0 && g.1 == w.1 && g.2 >= w.2)
                })
        }
    }
}

/// A topic of `partitions`, the app's group, and a model fed with the stream.
struct Run {
    app: String,
    input: String,
    group: String,
    dlq: String,
    partitions: i32,
    win: Win,
    /// The stream in the parts the test produces one after the other.
    parts: Vec<Vec<Event>>,
    events: Vec<Event>,
    model: Model,
    seed: u64,
    rng: rand::rngs::SmallRng,
}

impl Run {
    /// A stream of `n` records cut into parts at `tenths` of it, each part after the first starting with a late probe per
    /// partition.
    async fn new(prefix: &str, kind: Kind, partitions: i32, n: usize, tenths: &[usize]) -> Run {
        require_broker();
        let seed = seed();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let win = Win::random(kind, &mut rng);
        let mut rest = stream(&mut rng, &win, n, 12, partitions, now_ms());
        let mut parts = Vec::new();
        let mut taken = 0;
        for t in tenths {
            let tail = rest.split_off((n * t / 10 - taken).min(rest.len()));
            taken += rest.len();
            parts.push(std::mem::replace(&mut rest, tail));
        }
        parts.push(rest);
        for part in parts.iter_mut().skip(1) {
            probe_late(part, &win, partitions);
        }
        for (id, e) in parts.iter_mut().flatten().enumerate() {
            e.id = id as u64;
        }
        let events: Vec<Event> = parts.concat();
        let mut model = Model::new(win);
        for e in &events {
            model.feed(e);
        }
        eprintln!(
            "window {win:?}: {} records, {} late",
            events.len(),
            model.late.len()
        );
        assert!(
            !model.late.is_empty(),
            "seed {seed}: a stream with late records"
        );
        let app = unique(prefix);
        let input = format!("{app}-in");
        create_topic(&input, partitions).await;
        Run {
            group: format!("{app}-{AGENT}"),
            dlq: format!("{app}-{AGENT}-dlq"),
            app,
            input,
            partitions,
            win,
            parts,
            events,
            model,
            seed,
            rng,
        }
    }

    fn settings(&self, delay_ms: u64) -> String {
        settings(&self.input, self.partitions, &self.win, delay_ms)
    }
}

// ---- the tests --------------------------------------------------------------------------

/// Kills `w` (SIGKILL) once the agent has committed at least `at` records but before
/// it committed all `total` produced so far, and starts it again on its state.
async fn kill_mid_stream(mut w: Worker, run: &Run, at: i64, total: i64) -> Worker {
    w.wait_healthy(Duration::from_secs(60)).await;
    wait_committed(
        &run.group,
        &run.input,
        run.partitions,
        at,
        Duration::from_secs(60),
    )
    .await;
    w.kill9();
    let done: i64 = committed_offsets(&run.group, &run.input, run.partitions)
        .iter()
        .sum();
    assert!(done < total, "killed after the stream was over ({done})");
    eprintln!("SIGKILL after {done} of {total} records");
    w.restart()
}

/// One worker under exactly-once, SIGKILLed mid-stream, then between two parts of the
/// stream (the next starts with late records), then in the middle of that part, and
/// started again on its state directory each time: every window's count, the stream
/// times and the dead letters are the model's exactly.
#[tokio::test(flavor = "multi_thread")]
async fn windows_equal_the_model_after_sigkills_under_exactly_once() {
    let mut run = Run::new("win-eos", Kind::Hopping, 3, 900, &[5]).await;
    let p = ordered_producer();
    let (one, two) = (run.parts[0].clone(), run.parts[1].clone());
    let n1 = one.len() as i64;
    let total = run.events.len() as i64;
    produce_events(&p, &run.input, &one).await;
    let w = Worker::start_with(&run.app, &app_toml("exactly_once"), &run.settings(4));
    let at = run.rng.random_range(n1 / 5..n1 * 2 / 3);
    let mut w = kill_mid_stream(w, &run, at, n1).await;
    w.wait_healthy(Duration::from_secs(60)).await;
    wait_committed(
        &run.group,
        &run.input,
        run.partitions,
        n1,
        Duration::from_secs(60),
    )
    .await;
    w.kill9();
    let w = w.restart();
    produce_events(&p, &run.input, &two).await;
    let at = run.rng.random_range(n1 + 10..(n1 + total) / 2);
    let mut w = kill_mid_stream(w, &run, at, total).await;
    w.wait_healthy(Duration::from_secs(60)).await;
    let ends = ends(&run.events, run.partitions);
    wait_all_committed(&run.group, &run.input, &ends, &[&w]).await;
    let all: Vec<i64> = (0..run.partitions as i64).collect();
    wait_held(&w, |h| h == all, "one worker holds every partition").await;
    check(&w, &run.model, &run.dlq, Promise::Exact, run.seed).await;
}

/// Two workers: the first (a) processes part of the stream, the second (b) joins
/// (partitions and their windows move to it), one of them is SIGKILLed in the middle of
/// the next part, the rest is produced and the survivor takes every partition over. The
/// second and third parts start with late records.
async fn two_workers(prefix: &str, kind: Kind, guarantee: &str, promise: Promise, kill_a: bool) {
    let mut run = Run::new(prefix, kind, 4, 900, &[4, 7]).await;
    let settings = run.settings(6);
    let app = app_toml(guarantee);
    let p = ordered_producer();
    let (one, two, three) = (
        run.parts[0].clone(),
        run.parts[1].clone(),
        run.parts[2].clone(),
    );
    let all: Vec<i64> = (0..run.partitions as i64).collect();

    produce_events(&p, &run.input, &one).await;
    let mut a = Worker::start_with(&run.app, &app, &settings);
    a.wait_healthy(Duration::from_secs(60)).await;
    wait_committed(
        &run.group,
        &run.input,
        run.partitions,
        one.len() as i64,
        Duration::from_secs(60),
    )
    .await;
    wait_held(&a, |h| h == all, "the first worker holds every partition").await;

    let mut b = Worker::start_with(&run.app, &app, &settings);
    b.wait_healthy(Duration::from_secs(60)).await;
    let on_b = wait_held(&b, |h| !h.is_empty(), "the second worker takes some").await;
    let on_a = wait_held(
        &a,
        |h| !h.is_empty() && h.iter().all(|p| !on_b.contains(p)),
        "the first gives them up",
    )
    .await;
    eprintln!("split: a holds {on_a:?}, b holds {on_b:?}");

    produce_events(&p, &run.input, &two).await;
    let done = (one.len() + run.rng.random_range(two.len() / 5..two.len() / 2)) as i64;
    wait_committed(
        &run.group,
        &run.input,
        run.partitions,
        done,
        Duration::from_secs(60),
    )
    .await;
    eprintln!("SIGKILL of {}", if kill_a { "a" } else { "b" });
    let mut survivor = if kill_a {
        a.kill9();
        b
    } else {
        b.kill9();
        a
    };
    let done: i64 = committed_offsets(&run.group, &run.input, run.partitions)
        .iter()
        .sum();
    assert!(
        done < (one.len() + two.len()) as i64,
        "killed after the part was over ({done})"
    );
    produce_events(&p, &run.input, &three).await;
    wait_held(
        &survivor,
        |h| h == all,
        "the survivor takes every partition",
    )
    .await;
    let ends = ends(&run.events, run.partitions);
    wait_all_committed(&run.group, &run.input, &ends, &[&survivor]).await;
    survivor.wait_healthy(Duration::from_secs(10)).await;
    check(&survivor, &run.model, &run.dlq, promise, run.seed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_equal_the_model_when_partitions_move_and_a_worker_dies_under_exactly_once() {
    // b dies: the partitions it took come back to a, which must take their windows and
    // stream times from the changelog again.
    two_workers(
        "win-pair",
        Kind::Sliding,
        "exactly_once",
        Promise::Exact,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_are_at_least_the_model_when_a_worker_dies_under_at_least_once() {
    // a dies: b takes over partitions it never held.
    two_workers(
        "win-alo",
        Kind::Tumbling,
        "at_least_once",
        Promise::AtLeast,
        true,
    )
    .await;
}
