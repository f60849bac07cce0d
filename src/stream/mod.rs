//! Events and the streams agents read them from.

pub mod ack;
pub mod channel;
pub mod event;
pub(crate) mod feed;
pub mod leadership;
pub mod ops;
pub mod owner;
pub(crate) mod port;
pub mod sink;
pub mod timer;
pub mod typed;

pub use channel::{Channel, ChannelError, ChannelHub};
pub use event::{Event, Headers, RawEvent};
pub use leadership::{LeaderState, Leadership};
pub use ops::{EventStream, Next};
pub use owner::{Disposition, FailureKind, StreamOwner};
pub use sink::{DeliveryObserver, DeliveryTag, EnqueueError, OutRecord, Producer, RecordSink};
pub use timer::{Tick, WallClock};
pub use typed::{Port, Stream, StreamError};
