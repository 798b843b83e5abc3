//! dht-sim: a deterministic discrete-event simulator that runs the very `dht-core` state
//! machines `dhtd` runs, on up to 100,000 virtual nodes, to reproduce the Chord paper's
//! figures and to check Zave's invariants under joins, failures and message loss.
//!
//! It owns the virtual world (time, network, failures) and never the protocol: if it needed
//! Chord logic of its own, the core would be in the wrong shape. One thread, no async runtime,
//! one seeded generator: the same arguments give byte-identical output.
//!
//! Modules: [`engine`] (event queue and virtual clock), [`net`] (latency and loss),
//! [`world`] (the world, its run loop and event dispatch), `messages` (requests, answers,
//! continuations, events), `config` ([`SimConfig`]), `transport` (calls, losses, delivery,
//! timeouts), `view` (the true ring, node states, invariant checks), `membership` (nodes
//! joining and failing, the ideal build), `driver` (lookups, stabilize, rectify and join
//! driven through the core), [`coldstart`] (the core's cold-start rule driven on the virtual
//! network), [`trace`] (the events before a violation), [`stats`] (summaries),
//! [`report`] (CSV, SVG and tables), [`experiments`] (one module per experiment).

pub mod coldstart;
mod config;
pub mod engine;
pub mod experiments;
pub mod net;
pub mod report;
pub mod stats;
pub mod trace;
pub mod world;

mod driver;
mod membership;
mod messages;
mod transport;
mod view;

pub use world::{LookupResult, Outcome, SimConfig, World};

/// Everything that can stop a run: bad arguments or an output file that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Arg(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// An invariant check failed; the text names the seed, the round, the property and the
    /// events that led there.
    #[error("{0}")]
    Violation(String),
    #[error("cannot draw {path}: {msg}")]
    Plot { path: String, msg: String },
}
