//! Windowed tables through the driver: hand-made cases, then property tests — random
//! streams with out-of-order and late events and random windows, each read the agent
//! makes compared with a brute-force model (a plain fold over the events written from
//! the documented semantics, not from `table::window`), also across a crash and
//! partitions taken away and given back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::broker::partition_of;
use super::TestDriver;
use crate::agent::{AgentContext, AgentFn, AgentResult};
use crate::register_table;
use crate::stream::Stream;
use crate::table::window::{window_key, STREAM_TIME_KEY};
use crate::table::Updated;

register_table!(Ids = "window_ids", String => Vec<u32>);

/// An event: `time` is its event time; `query` a time the agent reads the window of.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Reading {
    id: u32,
    key: String,
    time: i64,
    query: i64,
}

/// What the agent read after folding an event in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Seen {
    id: u32,
    windows_updated: usize,
    current: Option<Vec<u32>>,
    delta: Option<Vec<u32>>,
    at_query: Option<Vec<u32>>,
    windows: Vec<(i64, i64, Vec<u32>)>,
    stream_time: Option<i64>,
}

#[derive(Deserialize)]
struct Params {
    /// Event time from the value's field (`.at(t)`), not the record's timestamp.
    field: bool,
    delta_ms: u64,
}

/// Appends each event's id to its windows, then reports every read.
async fn windowed_ids(ctx: AgentContext, mut readings: Stream<Reading>) -> AgentResult {
    let p: Params = ctx.params()?;
    let table = ctx
        .windowed_table::<Ids>()?
        .with_merge(|mut older: Vec<u32>, newer| {
            older.extend(newer);
            older
        });
    while let Some(e) = readings.next().await? {
        let r = e.value;
        let wt = if p.field {
            table.at(r.time)
        } else {
            table.clone()
        };
        let updated = wt
            .update(&r.key, |old| {
                let mut ids = old.unwrap_or_default();
                ids.push(r.id);
                ids
            })
            .await?;
        let Updated::Windows(n) = updated else {
            continue;
        };
        let seen = Seen {
            id: r.id,
            windows_updated: n,
            current: wt.current(&r.key).await?,
            delta: wt.delta(&r.key, Duration::from_millis(p.delta_ms)).await?,
            at_query: wt.value_at(&r.key, r.query).await?,
            windows: wt
                .windows(&r.key, i64::MIN, i64::MAX)
                .await?
                .into_iter()
                .map(|w| (w.start, w.end, w.value))
                .collect(),
            stream_time: wt.stream_time().await?,
        };
        ctx.send(ctx.sink(0)?, Some(r.key.as_str()), &seen).await?;
    }
    Ok(())
}

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
    fn toml(&self) -> String {
        let (kind, step) = match self.kind {
            Kind::Tumbling => ("tumbling", String::new()),
            Kind::Hopping => ("hopping", format!(", step = {}", self.step)),
            Kind::Sliding => ("sliding", format!(", step = {}", self.step)),
        };
        format!(
            "{{ kind = \"{kind}\", size = {}{step}, grace = {}, expires = {} }}",
            self.size, self.grace, self.expires
        )
    }
}

fn settings(w: &Win, partitions: i32, guarantee: &str, field: bool, delta: i64) -> String {
    format!(
        "[app]\nid = \"win\"\nprocessing_guarantee = \"{guarantee}\"\n\
         [topics.readings]\npartitions = {partitions}\n\
         [agents.windowed_ids]\nsource.topics = [\"readings\"]\nsinks = [\"seen\"]\n\
         on_error = \"dead-letter\"\nparams = {{ field = {field}, delta_ms = {delta} }}\n\
         [tables.window_ids]\nagent = \"windowed_ids\"\npartitions = {partitions}\nwindow = {}\n",
        w.toml()
    )
}

async fn start(toml: &str) -> TestDriver {
    TestDriver::with_settings(toml)
        .unwrap()
        .agent("windowed_ids", AgentFn::new(windowed_ids))
        .start()
        .await
        .unwrap()
}

// ---- the reference model ---------------------------------------------------------------

/// The documented semantics, written naively: per partition the stream time is the
/// highest event time seen; an event goes into each stored window containing it that
/// is not closed (end + grace > stream time); none: late. A stored window is gone once
/// its end + expires <= stream time, where the end is start + size (for a sliding
/// bucket, that of the last window holding it).
struct Model {
    w: Win,
    partitions: i32,
    stream_time: BTreeMap<i32, i64>,
    /// (partition, key, start) → ids in arrival order.
    windows: BTreeMap<(i32, String, i64), Vec<u32>>,
    /// Every stored window ever written.
    written: BTreeSet<(i32, String, i64)>,
    late: Vec<u32>,
    seen: BTreeMap<u32, Seen>,
    delta: i64,
}

impl Model {
    fn new(w: Win, partitions: i32, delta: i64) -> Self {
        Self {
            w,
            partitions,
            stream_time: BTreeMap::new(),
            windows: BTreeMap::new(),
            written: BTreeSet::new(),
            late: Vec::new(),
            seen: BTreeMap::new(),
            delta,
        }
    }

    /// The source's partition of `key` (raw key bytes), and so the table's.
    fn partition(&self, key: &str) -> i32 {
        partition_of(key.as_bytes(), self.partitions)
    }

    /// Length of a stored window: a sliding table stores buckets of `step`.
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

    /// Starts of the stored windows holding `t`: every start on the grid, tried one
    /// by one.
    fn stored_windows_of(&self, t: i64) -> Vec<i64> {
        let span = self.span();
        ((t - span - self.grid())..=t)
            .filter(|s| s.rem_euclid(self.grid()) == 0 && *s <= t && t < s + span)
            .collect()
    }

    fn expired(&self, p: i32, start: i64) -> bool {
        self.stream_time
            .get(&p)
            .is_some_and(|st| start + self.w.size + self.w.expires <= *st)
    }

    fn feed(&mut self, r: &Reading) {
        let p = self.partition(&r.key);
        let st = self
            .stream_time
            .get(&p)
            .map_or(r.time, |s| (*s).max(r.time));
        let open: Vec<i64> = self
            .stored_windows_of(r.time)
            .into_iter()
            .filter(|s| s + self.w.size + self.w.grace > st)
            .collect();
        if open.is_empty() {
            self.late.push(r.id);
            return;
        }
        self.stream_time.insert(p, st);
        for s in &open {
            self.windows
                .entry((p, r.key.clone(), *s))
                .or_default()
                .push(r.id);
            self.written.insert((p, r.key.clone(), *s));
        }
        let gone: Vec<_> = self
            .windows
            .keys()
            .filter(|(q, _, s)| *q == p && self.expired(p, *s))
            .cloned()
            .collect();
        for k in gone {
            self.windows.remove(&k);
        }
        let seen = Seen {
            id: r.id,
            windows_updated: open.len(),
            current: self.value_at(&r.key, r.time),
            delta: self.value_at(&r.key, r.time - self.delta),
            at_query: self.value_at(&r.key, r.query),
            windows: self.windows_of(&r.key),
            stream_time: Some(st),
        };
        self.seen.insert(r.id, seen);
    }

    /// The window a read at `t` answers: tumbling and hopping, the stored window
    /// holding `t` that starts last; sliding, the `size` ending where `t`'s bucket
    /// ends, all of its buckets in time order.
    fn value_at(&self, key: &str, t: i64) -> Option<Vec<u32>> {
        let p = self.partition(key);
        let st = self.stream_time.get(&p).copied();
        match self.w.kind {
            Kind::Tumbling | Kind::Hopping => {
                let start = *self.stored_windows_of(t).iter().max()?;
                if self.expired(p, start) {
                    return None;
                }
                self.windows.get(&(p, key.to_string(), start)).cloned()
            }
            Kind::Sliding => {
                let end = (t + 1..=t + self.w.step)
                    .find(|e| e.rem_euclid(self.w.step) == 0)
                    .unwrap();
                if st.is_some_and(|st| end + self.w.expires <= st) {
                    return None;
                }
                let mut ids: Option<Vec<u32>> = None;
                for ((q, k, s), v) in &self.windows {
                    if *q == p && k == key && end - self.w.size <= *s && *s < end {
                        ids.get_or_insert_with(Vec::new).extend(v);
                    }
                }
                ids
            }
        }
    }

    fn windows_of(&self, key: &str) -> Vec<(i64, i64, Vec<u32>)> {
        let p = self.partition(key);
        self.windows
            .iter()
            .filter(|((q, k, s), _)| *q == p && k == key && !self.expired(p, *s))
            .map(|((_, _, s), v)| (*s, s + self.span(), v.clone()))
            .collect()
    }
}

// ---- checking the driver against the model --------------------------------------------

/// Everything the driver shows equals the model: the agent's reads, what was
/// dead-lettered as late, the windows in the stores (expired ones gone), the stream
/// times, and the changelog (expired windows tombstoned).
async fn check(t: &TestDriver, m: &Model, keys: &[String], count_late: bool) {
    let seen: BTreeMap<u32, Seen> = t
        .values::<Seen>("seen")
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    assert_eq!(seen.len(), m.seen.len(), "one report per event in time");
    for (id, want) in &m.seen {
        assert_eq!(seen.get(id), Some(want), "reads after event {id}");
    }
    let mut late: Vec<u32> = Vec::new();
    for r in t.dead_letters("windowed_ids") {
        let reading: Reading = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        assert_eq!(
            r.headers.get_str(crate::agent::policy::headers::KIND),
            Some("late")
        );
        late.push(reading.id);
    }
    late.sort_unstable();
    let mut want_late = m.late.clone();
    want_late.sort_unstable();
    assert_eq!(late, want_late, "late events, dead-lettered");
    let view = t.windowed::<Ids>().unwrap();
    if count_late {
        assert_eq!(view.late_events(), m.late.len() as u64);
    }
    for key in keys {
        let got: Vec<(i64, i64, Vec<u32>)> = view
            .windows(key)
            .await
            .unwrap()
            .into_iter()
            .map(|w| (w.start, w.end, w.value))
            .collect();
        assert_eq!(got, m.windows_of(key), "windows of {key}");
    }
    let mut stored = view.stored().await.unwrap();
    stored.sort();
    let mut want: Vec<(String, i64)> = m.windows.keys().map(|(_, k, s)| (k.clone(), *s)).collect();
    want.sort();
    assert_eq!(stored, want, "expired windows are gone from the stores");
    for p in 0..m.partitions {
        assert_eq!(
            view.stream_time(p).unwrap(),
            m.stream_time.get(&p).copied(),
            "stream time of partition {p}"
        );
    }
    // The changelog's last word on every window ever written: its value, or a
    // tombstone once expired.
    let mut last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    for r in t.records(&t.changelog_topic("window_ids")) {
        let k = r.key.unwrap().to_vec();
        last.insert(k, r.value.map(|v| v.to_vec()));
    }
    for (p, key, start) in &m.written {
        let k = window_key(&serde_json::to_vec(key).unwrap(), *start);
        let want = m
            .windows
            .get(&(*p, key.clone(), *start))
            .map(|ids| serde_json::to_vec(ids).unwrap());
        assert_eq!(
            last.get(&k),
            Some(&want),
            "changelog of window ({key}, {start})"
        );
    }
    assert!(m.stream_time.is_empty() || last.contains_key(STREAM_TIME_KEY));
}

async fn send(t: &TestDriver, r: &Reading, field: bool) {
    if field {
        // No timestamp at all: the agent must take the time from the field.
        t.send("readings", Some(r.key.as_str()), r).await.unwrap();
    } else {
        t.send_at("readings", Some(r.key.as_str()), r, r.time)
            .await
            .unwrap();
    }
}

// ---- hand-made cases -------------------------------------------------------------------

fn reading(id: u32, key: &str, time: i64) -> Reading {
    Reading {
        id,
        key: key.into(),
        time,
        query: time,
    }
}

#[tokio::test]
async fn tumbling_windows_count_late_events_and_expire() {
    let w = Win {
        kind: Kind::Tumbling,
        size: 10,
        step: 10,
        grace: 5,
        expires: 20,
    };
    let mut t = start(&settings(&w, 1, "at_least_once", false, 10)).await;
    let mut m = Model::new(w, 1, 10);
    let events = [
        reading(1, "a", 3),
        reading(2, "a", 12),
        reading(3, "a", 7),  // stream time 12 < 10 + 5: within the grace
        reading(4, "b", 16), // a's [0,10) closes at 15
        reading(5, "a", 9),  // late
        reading(6, "b", 41), // a's [0,10) expires at 30, [10,20) at 40
    ];
    for r in &events {
        send(&t, r, false).await;
        m.feed(r);
    }
    t.settle().await.unwrap();
    assert_eq!(m.late, vec![5]);
    assert_eq!(
        m.windows_of("a"),
        vec![],
        "a's windows expired with no event of a"
    );
    check(&t, &m, &["a".into(), "b".into()], true).await;
    let s = t.status("windowed_ids").unwrap();
    assert_eq!(s.dead_lettered, 1);
}

#[tokio::test]
async fn hopping_and_sliding_windows_hand_made() {
    let hopping = Win {
        kind: Kind::Hopping,
        size: 10,
        step: 5,
        grace: 0,
        expires: 100,
    };
    let mut t = start(&settings(&hopping, 1, "at_least_once", true, 5)).await;
    let mut m = Model::new(hopping, 1, 5);
    for r in [reading(1, "k", 7), reading(2, "k", 12), reading(3, "k", 4)] {
        send(&t, &r, true).await;
        m.feed(&r);
    }
    t.settle().await.unwrap();
    // 7 is in [0,10) and [5,15); 12 in [5,15) and [10,20); 4 only in [0,10), closed
    // at 10 < 12 but [-5,5) too: late.
    assert_eq!(m.late, vec![3]);
    assert_eq!(
        m.windows_of("k"),
        vec![(0, 10, vec![1]), (5, 15, vec![1, 2]), (10, 20, vec![2])]
    );
    check(&t, &m, &["k".into()], true).await;

    let sliding = Win {
        kind: Kind::Sliding,
        size: 6,
        step: 2,
        grace: 3,
        expires: 10,
    };
    let mut t = start(&settings(&sliding, 1, "at_least_once", false, 4)).await;
    let mut m = Model::new(sliding, 1, 4);
    for r in [reading(1, "k", 1), reading(2, "k", 4), reading(3, "k", 6)] {
        send(&t, &r, false).await;
        m.feed(&r);
    }
    t.settle().await.unwrap();
    // At 6: the window [2, 8) holds buckets [2,4) [4,6) [6,8): events 2 and 3.
    assert_eq!(m.seen[&3].current, Some(vec![2, 3]));
    assert_eq!(
        m.seen[&3].delta,
        Some(vec![1]),
        "at 2: [-2, 4), event 2 is at 4"
    );
    check(&t, &m, &["k".into()], true).await;
}

#[tokio::test]
async fn the_window_setting_decides_which_handle_an_agent_gets() {
    async fn plain(ctx: AgentContext, mut s: Stream<Reading>) -> AgentResult {
        let e = ctx.table::<Ids>().err().map(|e| e.to_string());
        ctx.send(ctx.sink(0)?, None::<&str>, &e).await?;
        while s.next().await?.is_some() {}
        Ok(())
    }
    let w = Win {
        kind: Kind::Tumbling,
        size: 10,
        step: 10,
        grace: 0,
        expires: 10,
    };
    let toml = settings(&w, 1, "at_least_once", false, 1);
    let mut t = TestDriver::with_settings(&toml)
        .unwrap()
        .agent("windowed_ids", AgentFn::new(plain))
        .start()
        .await
        .unwrap();
    t.settle().await.unwrap();
    let said: Vec<Option<String>> = t.values("seen").await.unwrap();
    assert!(
        said[0]
            .as_deref()
            .unwrap()
            .contains("use ctx.windowed_table"),
        "{said:?}"
    );
    // A sliding window without a step, or a step that does not divide its size.
    for (window, wanted) in [
        (
            "{ kind = \"sliding\", size = 10 }",
            "tables.window_ids.window.step",
        ),
        ("{ kind = \"sliding\", size = 10, step = 3 }", "multiple"),
        (
            "{ kind = \"hopping\", size = 10, step = 20 }",
            "must not exceed",
        ),
        (
            "{ kind = \"tumbling\", size = 10, grace = 5, expires = 1 }",
            "window.expires",
        ),
        ("{ kind = \"weekly\", size = 10 }", "weekly"),
    ] {
        let toml = toml.replace(&w.toml(), window);
        let err = TestDriver::with_settings(&toml)
            .map(|b| b.agent("windowed_ids", AgentFn::new(windowed_ids)));
        let message = match err {
            Err(e) => e.to_string(),
            Ok(b) => match b.start().await {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{window} was accepted"),
            },
        };
        assert!(message.contains(wanted), "{window}: {message}");
    }
}

#[tokio::test]
async fn a_late_event_under_policy_fail_fails_the_agent() {
    let w = Win {
        kind: Kind::Tumbling,
        size: 10,
        step: 10,
        grace: 0,
        expires: 100,
    };
    let toml = settings(&w, 1, "at_least_once", false, 1)
        .replace("on_error = \"dead-letter\"", "on_error = \"fail\"");
    let mut t = start(&toml).await;
    for r in [reading(1, "a", 25), reading(2, "a", 3)] {
        send(&t, &r, false).await;
    }
    let _ = t.settle().await;
    let s = t.status("windowed_ids").unwrap();
    assert!(s.failures >= 1, "{s:?}");
    assert!(
        s.last_failure
            .as_ref()
            .is_some_and(|f| format!("{f:?}").contains("is late")),
        "{s:?}"
    );
    assert!(t.windowed::<Ids>().unwrap().late_events() >= 1);
    assert!(t.dead_letters("windowed_ids").is_empty());
}

// ---- property tests --------------------------------------------------------------------

fn win() -> impl Strategy<Value = Win> {
    (0..3u8, 2..40i64, 0..3i64, 0..200i64).prop_flat_map(|(kind, size, grace_f, extra)| {
        let kind = [Kind::Tumbling, Kind::Hopping, Kind::Sliding][kind as usize];
        let steps: Vec<i64> = match kind {
            Kind::Tumbling => vec![size],
            Kind::Hopping => (1..=size).collect(),
            Kind::Sliding => (1..=size).filter(|s| size % s == 0).collect(),
        };
        (prop::sample::select(steps), 0..=size * grace_f).prop_map(move |(step, grace)| Win {
            kind,
            size,
            step,
            grace,
            expires: grace + extra % (4 * size + 1),
        })
    })
}

/// Events moving forward in time, some of them far back (out of order, or late).
fn readings(keys: usize) -> impl Strategy<Value = Vec<Reading>> {
    prop::collection::vec(
        (
            0..keys,
            0..12i64,
            prop::bool::weighted(0.3),
            0..120i64,
            -60..60i64,
        ),
        1..50,
    )
    .prop_map(|steps| {
        let mut now = 1_000;
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (key, forward, back, by, q))| {
                now += forward;
                let time = if back { now - by } else { now };
                Reading {
                    id: i as u32,
                    key: format!("k{key}"),
                    time,
                    query: time + q,
                }
            })
            .collect()
    })
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(f)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every read equals the model's, whatever the windows and the order of events.
    #[test]
    fn windows_equal_the_model(
        w in win(),
        events in readings(4),
        partitions in 1..4i32,
        field in any::<bool>(),
        delta in 0..80i64,
    ) {
        run(async {
            let mut t = start(&settings(&w, partitions, "at_least_once", field, delta)).await;
            let mut m = Model::new(w, partitions, delta);
            for r in &events {
                send(&t, r, field).await;
                m.feed(r);
            }
            t.settle().await.unwrap();
            let keys: Vec<String> = (0..4).map(|k| format!("k{k}")).collect();
            check(&t, &m, &keys, true).await;
        });
    }

    /// The same across a crash in the middle of a transaction (exactly-once: the
    /// aborted events are done again, once) and partitions taken away and given back:
    /// the windows and stream times come back from the changelog.
    #[test]
    fn windows_survive_a_crash_and_moving_partitions(
        w in win(),
        events in readings(4),
        partitions in 1..4i32,
        crash_at in 0..50usize,
        held in 1..10usize,
        revoke_at in 0..50usize,
    ) {
        run(async {
            let mut t = start(&settings(&w, partitions, "exactly_once", false, 7)).await;
            let mut m = Model::new(w, partitions, 7);
            let crash_at = crash_at.min(events.len());
            let revoke_at = revoke_at.min(events.len());
            for (i, r) in events.iter().enumerate() {
                if i == crash_at {
                    t.settle().await.unwrap();
                    t.hold_deliveries();
                }
                if i == crash_at + held {
                    t.settle().await.unwrap();
                    t.crash().await.unwrap();
                }
                if i == revoke_at {
                    t.settle().await.unwrap();
                    for p in 0..partitions {
                        t.revoke("readings", p);
                    }
                    t.settle().await.unwrap();
                }
                send(&t, r, false).await;
                m.feed(r);
            }
            t.settle().await.unwrap();
            if t.restarts() == 0 && t.worker().producer.is_held() {
                t.crash().await.unwrap();
            }
            let keys: Vec<String> = (0..4).map(|k| format!("k{k}")).collect();
            // The late count starts again with each worker; the dead letters hold all.
            check(&t, &m, &keys, false).await;
        });
    }

    /// Aborted transactions (exactly-once) drop the staged window writes and stream
    /// time: the events are done again, once, from what the changelog holds.
    #[test]
    fn windows_survive_aborted_transactions(
        w in win(),
        events in readings(3),
        partitions in 1..3i32,
        aborts in prop::collection::btree_set(0..50usize, 1..4),
        held in 1..6usize,
    ) {
        run(async {
            let mut t = start(&settings(&w, partitions, "exactly_once", false, 3)).await;
            let mut m = Model::new(w, partitions, 3);
            let aborts: BTreeSet<usize> = aborts.iter().map(|a| a % events.len()).collect();
            let mut release_at = None;
            for (i, r) in events.iter().enumerate() {
                if release_at == Some(i) {
                    t.settle().await.unwrap();
                    t.abort_transaction().await;
                    t.release_deliveries();
                    release_at = None;
                }
                if release_at.is_none() && aborts.contains(&i) {
                    t.settle().await.unwrap();
                    t.hold_deliveries();
                    release_at = Some(i + held);
                }
                send(&t, r, false).await;
                m.feed(r);
            }
            t.settle().await.unwrap();
            if release_at.is_some() {
                t.abort_transaction().await;
                t.release_deliveries();
                t.settle().await.unwrap();
            }
            assert!(t.transactions().1 >= 1, "a transaction was aborted");
            let keys: Vec<String> = (0..3).map(|k| format!("k{k}")).collect();
            check(&t, &m, &keys, false).await;
        });
    }
}
