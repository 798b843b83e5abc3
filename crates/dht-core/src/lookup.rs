//! The iterative lookup, as a state machine the node and the simulator drive.
//!
//! The driver starts a [`Lookup`], performs each [`LookupStep::Ask`] as a `FindStep` call, and
//! feeds back the reply or the timeout. Candidates form a stack: a reply's candidates (only
//! members strictly closer to the key than the one that answered, so a lookup always
//! terminates) go on top in the order the answering node prefers, and a timeout falls back to
//! the next candidate below: the previous hop's next choice (CHORD.md, Lookup). It never gives
//! up while a candidate remains.
//!
//! Hops follow the Chord paper's path length: the number of other nodes that answered until
//! the key's predecessor was found; 0 when the start node is that predecessor.

use std::collections::HashSet;

use crate::interval::between_open;
use crate::{Id, NodeState, Peer, Step};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupStep {
    /// Send a `FindStep(key)` to this peer and feed back its answer or timeout.
    Ask(Peer),
    /// The owner (the key's successor) and the path length.
    Done { owner: Peer, hops: u32 },
    /// Every known candidate failed.
    Failed { hops: u32 },
}

#[derive(Clone, Debug)]
pub struct Lookup {
    key: Id,
    candidates: Vec<Peer>,
    tried: HashSet<Id>,
    hops: u32,
    timeouts: u32,
}

impl Lookup {
    /// Starts a lookup of `key` at `node`; may finish at once.
    pub fn start(node: &NodeState, key: Id) -> (Lookup, LookupStep) {
        let mut l = Lookup {
            key,
            candidates: Vec::new(),
            tried: HashSet::from([node.id()]),
            hops: 0,
            timeouts: 0,
        };
        let step = match node.find_step(key) {
            Step::Owner(owner) => LookupStep::Done { owner, hops: 0 },
            Step::Closer(list) => {
                l.push(list, node.id());
                l.next()
            }
        };
        (l, step)
    }

    pub fn key(&self) -> Id {
        self.key
    }

    pub fn hops(&self) -> u32 {
        self.hops
    }

    pub fn timeouts(&self) -> u32 {
        self.timeouts
    }

    /// `from` answered our `FindStep`.
    pub fn on_reply(&mut self, from: &Peer, reply: Step) -> LookupStep {
        self.hops += 1;
        match reply {
            Step::Owner(owner) => LookupStep::Done {
                owner,
                hops: self.hops,
            },
            Step::Closer(list) => {
                self.push(list, from.id);
                self.next()
            }
        }
    }

    /// `peer` did not answer in time. The driver should also tell its [`NodeState`].
    pub fn on_timeout(&mut self, _peer: &Peer) -> LookupStep {
        self.timeouts += 1;
        self.next()
    }

    /// Puts `list` (best first) on top of the stack, keeping only members in (from, key).
    fn push(&mut self, list: Vec<Peer>, from: Id) {
        for p in list.into_iter().rev() {
            if between_open(p.id, from, self.key) && !self.tried.contains(&p.id) {
                self.candidates.retain(|c| c.id != p.id);
                self.candidates.push(p);
            }
        }
    }

    fn next(&mut self) -> LookupStep {
        while let Some(p) = self.candidates.pop() {
            if self.tried.insert(p.id) {
                return LookupStep::Ask(p);
            }
        }
        LookupStep::Failed { hops: self.hops }
    }
}
