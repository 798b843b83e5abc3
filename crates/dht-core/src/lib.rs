//! The Chord rules of dht, with no I/O, no async, no clock and no randomness of their own.
//!
//! This crate is the protocol: the node (`dht-node`) and the simulator (`dht-sim`) both drive
//! these very types, so what the simulator measures is what `dhtd` runs. It follows Zave's
//! corrected Chord as stated in `docs/protocol.md`. Events come in as method calls (a reply, a
//! timeout, a notify); what to do next comes back as data ([`LookupStep`], [`StabilizeStep`],
//! [`ProbeStep`], [`Rectify`]), including when to retry a failed call: drivers follow it and
//! carry no protocol policy of their own. Time is the count of stabilize rounds a node has begun.
//!
//! Modules: [`id`] (identifiers, SHA-1, the circle), [`interval`] (modular interval tests),
//! `peer`, `successors`, `finger`, `dead` (the node's tables), `state` (routing, ownership,
//! failure, join and leave decisions), [`lookup`] (iterative lookup), `stabilize`, `probe`
//! (liveness checks, confirmed once), `rectify`, `passive` and `unify` (remembering members presumed dead and
//! merging the rings a partition made), `fix_fingers` (maintenance), `coldstart` (who starts the ring when
//! every node waits for another), [`placement`] (replica sets), [`digest`] (anti-entropy buckets and digests), [`quorum`] (quorum decisions), `config`, [`invariants`] (Zave's ring properties
//! over a snapshot of states, for tests and the simulator).

mod coldstart;
mod config;
mod dead;
pub mod digest;
mod error;
mod finger;
mod fix_fingers;
pub mod id;
pub mod interval;
pub mod invariants;
pub mod lookup;
mod passive;
mod peer;
pub mod placement;
mod probe;
pub mod quorum;
mod rectify;
mod stabilize;
mod state;
mod successors;
mod unify;

#[cfg(test)]
mod tests;

pub use coldstart::{ColdStart, ColdStartStep, Heard, Standing};
pub use config::ChordConfig;
pub use dead::DeadSet;
pub use error::CoreError;
pub use finger::{successor_in, FingerTable};
pub use id::{Id, IdSpace};
pub use lookup::{Lookup, LookupStep};
pub use passive::{PassiveEntry, PassiveList};
pub use peer::Peer;
pub use placement::{own_replicas, replica_set, replicas_from_view};
pub use probe::{Probe, ProbeStep};
pub use quorum::{Count, Quorum, Tally};
pub use rectify::Rectify;
pub use stabilize::{Stabilize, StabilizeStep};
pub use state::{LeavePlan, NodeState, Step};
pub use successors::SuccessorList;
pub use unify::{Notice, OnNotice, Verdict};
