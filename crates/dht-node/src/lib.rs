//! A running dht node, as a library: everything `dhtd` does except process concerns
//! (arguments, configuration files, signals, logging setup).
//!
//! The node serves the `Peer`, `Kv` and gRPC health services on one port, drives `dht-core`'s state
//! machines over the network (lookups, stabilize, rectify, fix-fingers, check-predecessor),
//! routes every client operation to the key's owner, and moves keys on join and leave. It
//! stores through the `dht_store::Store` trait. Start it with [`Node::new`] and [`Node::run`]
//! on a bound listener; cancel the token to make it leave gracefully and stop. It records
//! metrics through the `metrics` facade and never exports them itself: install a recorder
//! before [`Node::new`] to collect them (see [`telemetry`]).
//!
//! Modules, one role each: `node` (the parts and `run`), `lifecycle` (waiting, joining,
//! serving, leaving, left; join and leave), `coldstart` (waiting for a ring to join or
//! start), `peers` (every outbound call; the one sender of `Apply`), `coalesce` (per-peer
//! batching), `routing` (lookups, owner routing), `local` (the store and the owner side of
//! `Apply`), `handoff` (moving ranges), `antientropy` (digest exchange with the replicas; joins use it
//! too), `replica_gc` (dropping copies no longer replicated here), `maintenance` (periodic tasks, rectify, failures),
//! `tasks` (named, tracked background work), `service` (thin gRPC handlers), `validate`
//! (request checks), `convert` (wire ↔ domain), `error` (errors and their wire form),
//! `pool` (peer channels), `hlc` (write versions), `health`, `telemetry`. The design is in
//! the repository's docs/architecture.md and docs/protocol.md.

mod antientropy;
#[cfg(test)]
mod antientropy_tests;
mod coalesce;
mod coldstart;
mod config;
mod convert;
mod error;
#[cfg(test)]
mod failure_tests;
mod handoff;
mod health;
mod hlc;
mod lifecycle;
mod local;
mod maintenance;
mod node;
mod peers;
mod pool;
pub mod remembered;
mod replica_gc;
mod replicate;
mod routing;
mod service;
mod tasks;
pub mod telemetry;
#[cfg(test)]
mod test_node;
mod unify;
mod validate;

pub use config::NodeConfig;
pub use dht_core::Quorum;
pub use error::{NodeError, NotServing};
pub use lifecycle::Phase;
pub use node::Node;
