//! The app's leader among its workers, elected through Kafka as Faust elects it: every
//! worker with an `on_leader` timer joins one consumer group on a one-partition topic
//! (`Names::leader_group`, `Names::leader_topic`), and the member that holds the
//! partition is the leader. When it leaves, the group hands the partition to another
//! worker at once; when it dies, once its session times out
//! (`app.leader_session_timeout`).
//!
//! The firings of the `on_leader` timers are numbered in the metadata of the group's
//! committed offset. A firing is claimed by committing its number before the agent gets
//! it; the broker accepts the commit only from a member of the group's current
//! generation, so a worker that lost the leadership without noticing (paused past its
//! session) cannot claim, and a new leader reads the last number claimed. A claim is
//! good for half a session after it was sent: the coordinator cannot have replaced the
//! member before that.
//!
//! Handing over: when the partition is revoked, the leader stops claiming at once, waits
//! for the firing its agents have in hand and flushes the producer, all before the
//! rebalance goes on; the group gives the partition to the next leader only after that
//! (a partition is assigned anew only once its holder revoked it, or was expired). So the
//! next leader's records come after the last one's. The assignment is sticky: workers
//! joining do not move the leadership.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use super::client::{client_config, ClientKind};
use super::names::Names;
use crate::settings::Settings;
use crate::stream::leadership::{Claim, InFlight, LeaderState, Leadership};
use crate::stream::sink::Producer;

/// What the group's committed metadata holds: the last number claimed per timer.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Numbers {
    seq: BTreeMap<String, u64>,
}

/// How often the election's thread serves the consumer (rebalances) between claims.
const POLL: Duration = Duration::from_millis(50);
/// Attempts of a claim that failed for a reason other than lost leadership.
const CLAIM_ATTEMPTS: u32 = 5;

/// The Kafka leader election of one worker.
pub struct KafkaLeader {
    shared: Arc<Shared>,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    state: watch::Sender<LeaderState>,
    in_flight: InFlight,
    session: Duration,
    topic: String,
    /// Flushed before the leadership is given up, so that the next leader's records
    /// follow the last one's.
    producer: Producer,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    fn step_down(&self, why: &str) {
        if self.state.borrow().leader {
            tracing::info!("no longer the app's leader ({why}): on_leader timers stop here");
            self.state.send_replace(LeaderState::now(false));
        }
    }

    /// Lets the firings in hand finish and their records reach the broker, within half
    /// a session (after that the group may move on without us anyway).
    fn hand_over(&self) {
        let budget = self.session / 2;
        let started = Instant::now();
        if !self.in_flight.wait_idle_blocking(budget) {
            tracing::warn!(
                "an on_leader timer's firing was still in hand when the leadership went"
            );
        }
        let left = budget.saturating_sub(started.elapsed());
        if let Err(e) = self.runtime.block_on(self.producer.flush(left)) {
            tracing::warn!("records of the leader still undelivered when the leadership went: {e}");
        }
    }
}

enum Request {
    Claim {
        timer: String,
        reply: oneshot::Sender<Result<(u64, Instant), ClaimError>>,
    },
}

#[derive(Debug)]
enum ClaimError {
    /// Not the leader, or no longer: do not retry.
    NotLeader,
    /// The commit failed otherwise (a timeout, the coordinator moving): may be retried.
    Failed(String),
}

struct LeaderContext {
    shared: Arc<Shared>,
    /// Set by an assignment of the partition; the thread then reads the numbers.
    assigned: AtomicBool,
}

impl ClientContext for LeaderContext {}

impl ConsumerContext for LeaderContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if tpl.count() > 0 {
                self.assigned.store(false, Ordering::SeqCst);
                self.shared.step_down("the leader partition was revoked");
                self.shared.hand_over();
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if tpl.count() > 0 {
                // Nothing is ever written to the topic: no fetching.
                let _ = consumer.pause(tpl);
                self.assigned.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl KafkaLeader {
    /// Joins the election (the leader topic must exist). Must be called inside a tokio
    /// runtime: the hand-over flushes `producer` on it.
    pub fn start(settings: &Settings, producer: Producer) -> Result<Arc<Self>, String> {
        let names = Names::new(settings);
        let session = settings.app.leader_session_timeout;
        let shared = Arc::new(Shared {
            state: watch::Sender::new(LeaderState::now(false)),
            in_flight: InFlight::default(),
            session,
            topic: names.leader_topic(),
            producer,
            runtime: tokio::runtime::Handle::current(),
        });
        let mut cfg = client_config(settings, ClientKind::Consumer);
        cfg.set("group.id", names.leader_group());
        cfg.set("session.timeout.ms", session.as_millis().to_string());
        // Five heartbeats per session: a member is found dead promptly, and one late
        // heartbeat does not cost the leadership.
        cfg.set(
            "heartbeat.interval.ms",
            (session.as_millis() / 5).max(100).to_string(),
        );
        // Sticky: a worker that joins (or comes back after a pause) does not take the
        // leadership from a live leader; the partition moves only when its holder goes.
        cfg.set("partition.assignment.strategy", "cooperative-sticky");
        cfg.set("auto.offset.reset", "latest");
        cfg.set("statistics.interval.ms", "0");
        let consumer: BaseConsumer<LeaderContext> = cfg
            .create_with_context(LeaderContext {
                shared: shared.clone(),
                assigned: AtomicBool::new(false),
            })
            .map_err(|e| format!("cannot create the leader election's consumer: {e}"))?;
        consumer
            .subscribe(&[&shared.topic])
            .map_err(|e| format!("cannot join the leader election on {}: {e}", shared.topic))?;
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("leader-election".into())
            .spawn(move || run(consumer, s, rx))
            .map_err(|e| format!("cannot start the leader election: {e}"))?;
        tracing::info!(
            group = %names.leader_group(),
            session = %humantime::format_duration(session),
            "joined the leader election of on_leader timers"
        );
        Ok(Arc::new(Self {
            shared,
            requests: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    async fn request(&self, timer: &str) -> Result<(u64, Instant), ClaimError> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|tx| {
                tx.send(Request::Claim {
                    timer: timer.to_string(),
                    reply,
                })
                .is_ok()
            })
            .unwrap_or(false);
        if !sent {
            return Err(ClaimError::NotLeader);
        }
        answer.await.unwrap_or(Err(ClaimError::NotLeader))
    }
}

#[async_trait]
impl Leadership for KafkaLeader {
    fn watch(&self) -> watch::Receiver<LeaderState> {
        self.shared.state.subscribe()
    }

    async fn claim(&self, timer: &str) -> Option<Claim> {
        for attempt in 1..=CLAIM_ATTEMPTS {
            if !self.shared.state.borrow().leader {
                return None;
            }
            match self.request(timer).await {
                Ok((seq, sent)) => {
                    let until = tokio::time::Instant::from_std(sent + self.shared.session / 2);
                    return Some(Claim::new(seq, until, self.shared.in_flight.hold()));
                }
                Err(ClaimError::NotLeader) => return None,
                Err(ClaimError::Failed(e)) => {
                    tracing::warn!(
                        timer,
                        attempt,
                        "cannot record an on_leader timer's firing: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
        None
    }

    async fn resign(&self) {
        // Closing the channel ends the thread, which leaves the group.
        drop(
            self.requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// The election's thread: serves the consumer's rebalances and the claims, in turn.
fn run(
    consumer: BaseConsumer<LeaderContext>,
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Request>,
) {
    // The numbers as last committed, while this worker leads.
    let mut numbers: Option<Numbers> = None;
    let mut last_error = String::new();
    loop {
        if let Some(Err(e)) = consumer.poll(Duration::ZERO) {
            let e = e.to_string();
            if e != last_error {
                tracing::warn!("leader election: {e}");
                last_error = e;
            }
        }
        let ctx = consumer.context();
        if !ctx.assigned.load(Ordering::SeqCst) {
            numbers = None;
        } else if numbers.is_none() {
            match read_numbers(&consumer, &shared.topic) {
                Ok(n) => {
                    // The revocation may have come while the numbers were read.
                    if ctx.assigned.load(Ordering::SeqCst) {
                        tracing::info!(last = ?n.seq, "this worker is now the app's leader: on_leader timers fire here");
                        shared.state.send_replace(LeaderState::now(true));
                        numbers = Some(n);
                    }
                }
                Err(e) => tracing::warn!("leader election: cannot read the last firings: {e}"),
            }
        }
        match requests.recv_timeout(POLL) {
            Ok(Request::Claim { timer, reply }) => {
                let answer = match numbers.as_mut() {
                    None => Err(ClaimError::NotLeader),
                    Some(n) => claim(&consumer, &shared, n, &timer),
                };
                if matches!(answer, Err(ClaimError::NotLeader)) {
                    numbers = None;
                }
                let _ = reply.send(answer);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    shared.step_down("the worker stops");
    shared.hand_over();
    // Dropping the consumer leaves the group: the next leader is chosen at once.
    drop(consumer);
}

fn read_numbers(consumer: &BaseConsumer<LeaderContext>, topic: &str) -> Result<Numbers, String> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let meta = got
        .find_partition(topic, 0)
        .map(|e| e.metadata().to_string())
        .unwrap_or_default();
    if meta.is_empty() {
        return Ok(Numbers::default());
    }
    serde_json::from_str(&meta)
        .map_err(|e| format!("the group's metadata {meta:?} is not the leader's: {e}"))
}

/// Commits `timer`'s next number; the broker takes it only from the current generation.
fn claim(
    consumer: &BaseConsumer<LeaderContext>,
    shared: &Shared,
    numbers: &mut Numbers,
    timer: &str,
) -> Result<(u64, Instant), ClaimError> {
    let seq = numbers.seq.get(timer).map_or(0, |s| s + 1);
    let mut next = numbers.seq.clone();
    next.insert(timer.to_string(), seq);
    let meta = serde_json::to_string(&Numbers { seq: next.clone() })
        .map_err(|e| ClaimError::Failed(e.to_string()))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&shared.topic, 0, Offset::Offset(0))
        .map_err(|e| ClaimError::Failed(e.to_string()))?;
    if let Some(mut e) = tpl.find_partition(&shared.topic, 0) {
        e.set_metadata(meta);
    }
    let sent = Instant::now();
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => {
            numbers.seq = next;
            Ok((seq, sent))
        }
        Err(KafkaError::ConsumerCommit(
            code @ (RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::AssignmentLost
            | RDKafkaErrorCode::State),
        )) => {
            shared.step_down(&format!("the group refused its record: {code}"));
            // Leader again only by a new assignment (librdkafka rejoins the group).
            consumer.context().assigned.store(false, Ordering::SeqCst);
            Err(ClaimError::NotLeader)
        }
        Err(e) => Err(ClaimError::Failed(e.to_string())),
    }
}
