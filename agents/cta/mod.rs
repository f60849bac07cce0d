//! What the CTA agents share, none of it an agent: the records of the CTA topics and
//! tables, the simulation model, the data files it is built from, and what the producers
//! that follow the simulation clock have in common. A directory, so that `build.rs`
//! (which makes an agent module of every `agents/*.rs` file) leaves it out.

pub mod data;
pub mod model;
pub mod producer;
pub mod records;

#[cfg(test)]
pub mod driver;
