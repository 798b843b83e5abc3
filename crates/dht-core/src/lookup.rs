//! The iterative lookup, as a state machine the node and the simulator drive.
//!
//! The driver starts a [`Lookup`], performs each [`LookupStep::Ask`] as a `FindStep` call, and
//! feeds back the reply or the timeout. Candidates form a stack: a reply's candidates (only
//! members strictly closer to the key than the one that answered, so a lookup always
//! terminates) go on top in the order the answering node prefers, and a timeout falls back to
//! the next candidate below: the previous hop's next choice (docs/protocol.md, Lookup). It never gives
//! up while a candidate remains.
//!
//! Members that failed to answer (in this lookup, or known dead to the driving node) are never
//! asked and never returned as owner: when the node before the key names a dead successor, the
//! lookup takes the first live member of that node's successor list instead, as Chord does.
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
    dead: HashSet<Id>,
    /// Nodes that answered, with the head of their successor lists, most recent last.
    answered: Vec<(Id, Vec<Peer>)>,
    hops: u32,
    timeouts: u32,
    /// Every node that answered, in order.
    responders: Vec<Id>,
}

impl Lookup {
    /// Starts a lookup of `key` at `node`; may finish at once.
    pub fn start(node: &NodeState, key: Id) -> (Lookup, LookupStep) {
        let mut l = Lookup {
            key,
            candidates: Vec::new(),
            tried: HashSet::from([node.id()]),
            dead: node.dead.iter().collect(),
            answered: vec![(node.id(), node.successors().to_vec())],
            hops: 0,
            timeouts: 0,
            responders: Vec::new(),
        };
        let step = match node.find_step(key) {
            Step::Owner { owner, .. } => LookupStep::Done { owner, hops: 0 },
            Step::Closer { candidates, .. } => {
                l.push(candidates, node.id());
                l.next()
            }
        };
        (l, step)
    }

    /// Starts a lookup of `key` through `via`, ignoring this node's own tables: the ring
    /// unification probe (docs/protocol.md, "Ring unification") asks what *another* ring says
    /// about our id, so neither our successors nor what we believe dead may answer for it.
    pub fn start_via(node: &NodeState, key: Id, via: Peer) -> (Lookup, LookupStep) {
        let l = Lookup {
            key,
            candidates: Vec::new(),
            tried: HashSet::from([node.id(), via.id]),
            dead: HashSet::new(),
            answered: Vec::new(),
            hops: 0,
            timeouts: 0,
            responders: Vec::new(),
        };
        (l, LookupStep::Ask(via))
    }

    /// The nodes that answered this lookup: alive, whatever the driving node believed.
    pub fn responders(&self) -> impl Iterator<Item = Id> + '_ {
        self.responders.iter().copied()
    }

    /// The owner `owner` and the members after it, as the last node that named it listed them
    /// (the head of its successor list): what ring unification merges into ours.
    pub fn owner_list(&self, owner: Id) -> &[Peer] {
        for (_, list) in self.answered.iter().rev() {
            if let Some(i) = list.iter().position(|p| p.id == owner) {
                return &list[i..];
            }
        }
        &[]
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
        self.responders.push(from.id);
        match reply {
            Step::Owner { owner, successors } if !self.dead.contains(&owner.id) => {
                self.answered.push((from.id, successors));
                LookupStep::Done {
                    owner,
                    hops: self.hops,
                }
            }
            Step::Owner { successors, .. } => {
                self.answered.push((from.id, successors));
                self.resolve_or_next()
            }
            Step::Closer {
                candidates,
                successors,
            } => {
                self.answered.push((from.id, successors));
                self.push(candidates, from.id);
                self.resolve_or_next()
            }
        }
    }

    /// `peer` did not answer in time. The driver should also tell its [`NodeState`].
    pub fn on_timeout(&mut self, peer: &Peer) -> LookupStep {
        self.timeouts += 1;
        self.dead.insert(peer.id);
        self.resolve_or_next()
    }

    /// If some node that answered has the key between itself and its first live successor,
    /// that successor is the owner; otherwise ask the next candidate.
    fn resolve_or_next(&mut self) -> LookupStep {
        for (from, successors) in self.answered.iter().rev() {
            if let Some(s) = successors.iter().find(|p| !self.dead.contains(&p.id)) {
                if crate::interval::between_right(self.key, *from, s.id) {
                    return LookupStep::Done {
                        owner: s.clone(),
                        hops: self.hops,
                    };
                }
            }
        }
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
            if !self.dead.contains(&p.id) && self.tried.insert(p.id) {
                return LookupStep::Ask(p);
            }
        }
        LookupStep::Failed { hops: self.hops }
    }
}

/// One event in, the exact step out (docs/protocol.md, Lookup).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChordConfig;

    fn p(v: u64) -> Peer {
        Peer::new(Id::from_u64(v), format!("n{v}"))
    }

    /// Node 10 (8-bit ids, r = 2, no fingers) on the ring {10, 50, 90, 130, 200}: its list
    /// is [50, 90], so a key past 90 gives the candidates 90 then 50.
    fn node() -> NodeState {
        let cfg = ChordConfig::new(8, 64).unwrap().with_successors(2).unwrap();
        let ring: Vec<Peer> = [10, 50, 90, 130, 200].map(p).to_vec();
        let mut s = NodeState::new(cfg, p(10));
        s.set_ideal(&ring);
        s.clear_fingers();
        s
    }

    #[test]
    fn chord_a_lone_node_owns_every_key_in_zero_hops() {
        // Chord §4.3: a node whose successor is itself answers find_successor alone.
        let cfg = ChordConfig::new(8, 64).unwrap();
        let n = NodeState::new(cfg, p(10));
        let (_, step) = Lookup::start(&n, Id::from_u64(99));
        assert_eq!(
            step,
            LookupStep::Done {
                owner: p(10),
                hops: 0
            }
        );
    }

    #[test]
    fn chord_a_key_before_the_successor_is_owned_by_it_in_zero_hops() {
        let (_, step) = Lookup::start(&node(), Id::from_u64(40));
        assert_eq!(
            step,
            LookupStep::Done {
                owner: p(50),
                hops: 0
            }
        );
    }

    #[test]
    fn chord_a_lookup_asks_the_closest_preceding_member_first() {
        // Chord §4.3, closest_preceding_node: of 50 and 90, 90 is closer to 150.
        let (_, step) = Lookup::start(&node(), Id::from_u64(150));
        assert_eq!(step, LookupStep::Ask(p(90)));
    }

    #[test]
    fn chord_a_closer_reply_is_followed_and_an_owner_reply_ends_the_lookup() {
        // Chord §4.3, iterative find_successor: each hop counts one answering node.
        let (mut l, _) = Lookup::start(&node(), Id::from_u64(150));
        let closer = Step::Closer {
            candidates: vec![p(130)],
            successors: vec![p(130), p(200)],
        };
        assert_eq!(l.on_reply(&p(90), closer), LookupStep::Ask(p(130)));
        let owner = Step::Owner {
            owner: p(200),
            successors: vec![p(200), p(10)],
        };
        assert_eq!(
            l.on_reply(&p(130), owner),
            LookupStep::Done {
                owner: p(200),
                hops: 2
            }
        );
    }

    #[test]
    fn a_reply_whose_successors_cover_the_key_ends_the_lookup_there() {
        // docs/protocol.md, Lookup: a node that answered with the key between itself and its
        // first live successor names the owner, with no further hop.
        let (mut l, _) = Lookup::start(&node(), Id::from_u64(120));
        let closer = Step::Closer {
            candidates: vec![],
            successors: vec![p(130), p(200)],
        };
        assert_eq!(
            l.on_reply(&p(90), closer),
            LookupStep::Done {
                owner: p(130),
                hops: 1
            }
        );
    }

    #[test]
    fn a_timeout_falls_back_to_the_next_candidate_then_fails_when_none_remain() {
        // docs/protocol.md, Lookup: a timeout falls back to the previous hop's next choice,
        // and the lookup gives up only when no candidate remains.
        let (mut l, _) = Lookup::start(&node(), Id::from_u64(150));
        assert_eq!(l.on_timeout(&p(90)), LookupStep::Ask(p(50)));
        assert_eq!(l.on_timeout(&p(50)), LookupStep::Failed { hops: 0 });
        assert_eq!(l.timeouts(), 2);
    }

    #[test]
    fn chord_a_dead_hop_is_skipped_through_the_last_answering_node_s_successors() {
        // Chord §5: 90 named 130 as the way to 150; 130 is silent, so the first live member of
        // 90's list after it, 200, owns the key (150 lies in (90, 200]).
        let (mut l, _) = Lookup::start(&node(), Id::from_u64(150));
        let closer = Step::Closer {
            candidates: vec![p(130)],
            successors: vec![p(130), p(200)],
        };
        assert_eq!(l.on_reply(&p(90), closer), LookupStep::Ask(p(130)));
        assert_eq!(
            l.on_timeout(&p(130)),
            LookupStep::Done {
                owner: p(200),
                hops: 1
            }
        );
    }
}
