//! The CTA simulation model, apart from the agents that drive it: the train lines and
//! their trains, the turnstile entries from the ridership, and the weather's random walk.
//! It keeps the original's model and test vectors, adapted where a fix changes them.

pub mod lines;
pub mod turnstiles;
pub mod weather;
