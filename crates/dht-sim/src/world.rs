//! The simulated world: nodes holding `dht-core` state, the virtual network between them, and
//! the dispatch of every event.
//!
//! Every protocol decision is the core's: a node answers `FindStep` with
//! [`NodeState::find_step`], lookups are [`Lookup`] state machines, stabilize is [`Stabilize`],
//! rectify is [`NodeState::rectify`]. This module only carries messages, draws latencies and
//! losses, fires timers and turns a missing reply into a timeout, exactly what `dht-node` does
//! with tonic and tokio. The drivers of the multi-step exchanges are in [`crate::driver`].
//!
//! The world's parts by role: the messages and events are in `crate::messages`, the run's
//! settings in `crate::config`, sending, delivery, losses and timeouts in `crate::transport`,
//! the read-only views (the true ring, node states, invariant checks) in `crate::view`; this
//! module holds the world itself, its run loop and the dispatch of events.

use std::collections::{BTreeMap, HashMap};

use dht_core::{Id, Lookup, NodeState, Stabilize};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

use crate::coldstart::Cold;
use crate::engine::{Queue, Time};
use crate::trace::{Trace, TraceRec};
use crate::SimError;

pub use crate::config::SimConfig;
pub(crate) use crate::messages::{Cont, Event, Req, Resp, TimerKind};

/// Index of a node in the world (node ids are `dht-core` ids; this is the simulator's handle).
pub type Ix = u32;

pub(crate) struct SimNode {
    pub state: NodeState,
    pub alive: bool,
    /// Completed its join (or was built into the ring): a member.
    pub joined: bool,
    pub stabilize: Option<Stabilize>,
    pub stab_epoch: u64,
    pub finger_busy: bool,
    pub timers_armed: bool,
    pub join_attempt: u32,
    /// Position in `World::members`, when a member.
    pub(crate) pos: Option<usize>,
}

/// How a measured lookup ended, judged against the true membership when it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The lookup ran out of candidates.
    Failed,
    /// It named an owner that is dead.
    DeadOwner,
    /// It named a live node that is not the key's successor.
    WrongOwner,
}

#[derive(Clone, Copy, Debug)]
pub struct LookupResult {
    pub key: Id,
    pub hops: u32,
    pub timeouts: u32,
    pub outcome: Outcome,
    pub latency: Time,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Purpose {
    Measure,
    Finger(usize),
    Join(Ix),
}

pub(crate) struct LookupRun {
    pub origin: Ix,
    pub lookup: Lookup,
    pub purpose: Purpose,
    pub started: Time,
    pub gen: u32,
}

/// Message and event counts of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub events: u64,
    pub messages: u64,
    pub lost: u64,
    pub timeouts: u64,
}

pub struct World {
    pub cfg: SimConfig,
    pub rng: Pcg64,
    pub(crate) q: Queue<Event>,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) by_id: HashMap<Id, Ix>,
    /// Live members by id: the truth lookups are judged against.
    pub(crate) live: BTreeMap<Id, Ix>,
    /// Live members, for uniform random picks.
    pub(crate) members: Vec<Ix>,
    pub(crate) lookups: Vec<Option<LookupRun>>,
    pub(crate) free_slots: Vec<u32>,
    pub(crate) lookup_gen: u32,
    /// Measured lookups started and not finished, plus those the source has yet to start.
    pub(crate) outstanding: u64,
    pub results: Vec<LookupResult>,
    pub(crate) maintenance: bool,
    pub(crate) trace: Trace,
    pub counters: Counters,
    /// Failures and joins injected (the last 1,000), for violation reports.
    pub(crate) faults: std::collections::VecDeque<String>,
    pub(crate) next_name: u64,
    /// Nodes that find their ring by the cold-start rule (none outside that experiment).
    pub(crate) cold: Cold,
}

impl World {
    pub fn new(cfg: SimConfig) -> Result<World, SimError> {
        cfg.validate()?;
        Ok(World {
            rng: Pcg64::seed_from_u64(cfg.seed),
            trace: Trace::new(cfg.trace),
            cfg,
            q: Queue::default(),
            nodes: Vec::new(),
            by_id: HashMap::new(),
            live: BTreeMap::new(),
            members: Vec::new(),
            lookups: Vec::new(),
            free_slots: Vec::new(),
            lookup_gen: 0,
            outstanding: 0,
            results: Vec::new(),
            maintenance: false,
            counters: Counters::default(),
            faults: std::collections::VecDeque::new(),
            next_name: 0,
            cold: Cold::default(),
        })
    }

    pub fn now(&self) -> Time {
        self.q.now()
    }

    /// A uniformly random point of the identifier circle.
    pub fn random_key(&mut self) -> Id {
        let mut b = [0u8; 20];
        self.rng.fill(&mut b[..]);
        self.cfg.chord.space.mask(Id::from_be_bytes(b))
    }

    /// Turns periodic maintenance (stabilize, probes, check-predecessor, fix-fingers) on or
    /// off for every member. Off, the ring is frozen except for what lookups learn.
    pub fn set_maintenance(&mut self, on: bool) {
        self.maintenance = on;
        if on {
            for k in 0..self.members.len() {
                let ix = self.members[k];
                self.arm(ix);
            }
        }
    }

    pub(crate) fn arm(&mut self, ix: Ix) {
        if self.nodes[ix as usize].timers_armed {
            return;
        }
        self.nodes[ix as usize].timers_armed = true;
        let s = self.rng.random_range(0..self.cfg.stabilize_every);
        let f = self.rng.random_range(0..self.cfg.fix_fingers_every);
        self.q.after(
            s,
            Event::Timer {
                node: ix,
                kind: TimerKind::Stabilize,
            },
        );
        self.q.after(
            f,
            Event::Timer {
                node: ix,
                kind: TimerKind::FixFinger,
            },
        );
    }

    /// Runs every event up to and including time `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Time) {
        while let Some((_, ev)) = self.q.pop_until(t) {
            self.handle(ev);
        }
        self.q.advance_to(t);
    }

    /// Runs every queued event; with maintenance off the queue drains (bounded, in case a
    /// caller left maintenance on).
    pub fn settle(&mut self) {
        let mut n = 0u64;
        while let Some((_, ev)) = self.q.pop_until(Time::MAX) {
            self.handle(ev);
            n += 1;
            if n > 100_000_000 {
                break;
            }
        }
    }

    /// A uniformly random delay in [0, max).
    pub fn random_delay(&mut self, max: Time) -> Time {
        self.rng.random_range(0..max.max(1))
    }

    /// Runs `k` stabilize rounds of virtual time.
    pub fn run_rounds(&mut self, k: u64) {
        let t = self.now() + k * self.cfg.stabilize_every;
        self.run_until(t);
    }

    /// Issues `count` measured lookups, one every `spacing` µs from random members for random
    /// keys, and runs until all have ended. Returns their results (in the order they ended).
    pub fn run_lookups(&mut self, count: u64, spacing: Time) -> Vec<LookupResult> {
        self.results.clear();
        if count == 0 || self.members.is_empty() {
            return Vec::new();
        }
        self.outstanding += count;
        self.q.after(
            0,
            Event::LookupSource {
                remaining: count,
                spacing,
            },
        );
        while self.outstanding > 0 {
            match self.q.pop_until(Time::MAX) {
                Some((_, ev)) => self.handle(ev),
                None => break,
            }
        }
        std::mem::take(&mut self.results)
    }

    pub(crate) fn record(&mut self, what: &'static str, a: Ix, b: Ix) {
        if self.trace.enabled() {
            let name = |ix: Ix| format!("{:?}", self.nodes[ix as usize].state.me());
            let rec = TraceRec {
                at: self.q.now(),
                what,
                a: name(a),
                b: name(b),
            };
            self.trace.push(rec);
        }
    }

    fn handle(&mut self, ev: Event) {
        self.counters.events += 1;
        match ev {
            Event::Request {
                from,
                to,
                sent,
                req,
                cont,
            } => self.on_request(from, to, sent, req, cont),
            Event::Reply {
                from,
                to,
                resp,
                cont,
            } => {
                if self.nodes[to as usize].alive {
                    self.record("reply", from, to);
                    let from_id = self.nodes[from as usize].state.id();
                    self.nodes[to as usize].state.on_peer_alive(from_id);
                    self.on_reply(to, from, resp, cont);
                }
            }
            Event::Timeout { node, peer, cont } => {
                if self.nodes[node as usize].alive {
                    self.counters.timeouts += 1;
                    self.record("timeout", node, peer);
                    self.on_timeout(node, peer, cont);
                }
            }
            Event::Rectify { from, to } => {
                if self.nodes[to as usize].alive {
                    self.record("rectify", from, to);
                    self.on_rectify(from, to);
                }
            }
            Event::Timer { node, kind } => self.on_timer(node, kind),
            Event::JoinStart { node, attempt } => self.on_join_start(node, attempt),
            Event::JoinCheck { node, attempt } => {
                let n = &self.nodes[node as usize];
                if n.alive && !n.joined && n.join_attempt == attempt {
                    self.q.after(
                        0,
                        Event::JoinStart {
                            node,
                            attempt: attempt + 1,
                        },
                    );
                }
            }
            Event::JoinFound { node, owner } => {
                let n = &self.nodes[node as usize];
                if n.alive && !n.joined {
                    self.call(node, &owner, Req::GetState, Cont::JoinState);
                }
            }
            Event::LookupSource { remaining, spacing } => {
                self.outstanding -= 1;
                if let Some(origin) = self.random_member() {
                    let key = self.random_key();
                    self.outstanding += 1;
                    self.start_lookup(origin, key, Purpose::Measure);
                }
                if remaining > 1 {
                    self.q.after(
                        spacing,
                        Event::LookupSource {
                            remaining: remaining - 1,
                            spacing,
                        },
                    );
                }
            }
            Event::Kill { safe } => {
                if self.members.len() > 3 {
                    // A few tries to find a victim the assumption allows.
                    for _ in 0..8 {
                        if let Some(ix) = self.random_member() {
                            if !safe || self.kill_is_safe(ix) {
                                self.kill(ix);
                                break;
                            }
                        }
                    }
                }
            }
            Event::Spawn => {
                if self.room() > 0 {
                    let ix = self.add_node();
                    self.start_join(ix);
                }
            }
            Event::Cold(e) => self.on_cold(e),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::net::{Latency, NetModel};
    use dht_core::ChordConfig;

    pub(crate) fn cfg(seed: u64) -> SimConfig {
        SimConfig {
            chord: ChordConfig::new(32, 1024).unwrap(),
            net: NetModel::new(Latency::Uniform(1_000, 20_000), 0.0).unwrap(),
            timeout: 100_000,
            stabilize_every: 1_000_000,
            fix_fingers_every: 250_000,
            seed,
            trace: 0,
        }
    }
}
