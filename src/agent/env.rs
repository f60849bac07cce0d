//! What every agent of a worker shares. The worker builds it; agents see only this, not
//! the worker's own state (which sits above them, with the web server and the services).

use std::sync::Arc;

use super::coordinator::Coordinator;
use crate::codec::CodecCache;
use crate::kafka::TopicAdmin;
use crate::settings::Settings;
use crate::stream::sink::Producer;
use crate::stream::{ChannelHub, Leadership, WallClock};
use crate::table::TableManager;

pub struct AgentEnv {
    pub settings: Arc<Settings>,
    /// Where records go: the worker's one Kafka producer (or the test driver's topics).
    pub producer: Producer,
    pub codecs: Arc<CodecCache>,
    pub tables: Arc<TableManager>,
    /// Creates the topics agents name at run time.
    pub admin: Arc<dyn TopicAdmin>,
    /// The exactly-once coordinator, when `processing_guarantee = "exactly_once"`.
    pub coordinator: Option<Arc<dyn Coordinator>>,
    /// The worker's in-memory channels between agents.
    pub channels: Arc<ChannelHub>,
    /// The app's leadership, when an enabled agent's timer fires `on_leader`.
    pub leader: Option<Arc<dyn Leadership>>,
    /// Where timers read the time: the system's clock, or the test driver's virtual one.
    pub clock: WallClock,
}
