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
//! Modules: `node` (state and lifecycle), `coldstart` (waiting for a ring to join or start), `routing` (lookups, owner routing, local apply),
//! `handoff` (join and leave), `maintenance` (periodic tasks), `service` (gRPC handlers),
//! `convert` (wire ↔ domain), `pool` (peer channels), `coalesce` (per-peer batching), `hlc`
//! (write versions), `error`, `telemetry` (metric names and handles), `health` (gRPC health
//! following join and leave).

mod coalesce;
mod coldstart;
mod config;
mod convert;
mod error;
mod handoff;
mod health;
mod hlc;
mod maintenance;
mod node;
mod pool;
mod routing;
mod service;
pub mod telemetry;

pub use config::NodeConfig;
pub use error::NodeError;
pub use node::Node;
