//! One node's Chord state and the decisions that need nothing but that state: routing
//! (closest preceding node), ownership, failure handling, join and leave relinking.
//!
//! Everything here is synchronous and answers at once. The multi-step exchanges (a lookup, a
//! stabilize round) are state machines in their own modules that read and update a
//! [`NodeState`].

use crate::interval::{between_open, between_right};
use std::collections::HashMap;

use crate::{ChordConfig, DeadSet, FingerTable, Id, IdSpace, PassiveList, Peer, SuccessorList};

/// The answer of one routing step at a node (Chord's `find_successor`, one hop of it). Both
/// answers carry the head of the node's successor list, so a driver that knows some of those
/// members are dead can skip to the first live one, as Chord does with its successor list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The key lies in (me, successor]: the successor owns it, and this node is its predecessor.
    Owner { owner: Peer, successors: Vec<Peer> },
    /// Ask one of `candidates` instead: members preceding the key, the preferred first.
    Closer {
        candidates: Vec<Peer>,
        successors: Vec<Peer>,
    },
}

/// How a leaving node relinks its neighbours (docs/protocol.md, Leave).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeavePlan {
    /// Receives every key, and learns its new predecessor.
    pub successor: Option<Peer>,
    /// Learns to replace the leaving node by its successor list.
    pub predecessor: Option<Peer>,
    pub successors: Vec<Peer>,
}

#[derive(Clone, Debug)]
pub struct NodeState {
    pub(crate) cfg: ChordConfig,
    pub(crate) me: Peer,
    pub(crate) pred: Option<Peer>,
    /// The start of the range this node answers for: the last predecessor it adopted. It
    /// outlives the predecessor's death (a dead predecessor only extends our range), so a node
    /// keeps serving its own keys while waiting for the next rectify; only a join (a new
    /// predecessor) narrows it.
    pub(crate) range_start: Option<Id>,
    /// Keys the last rectify moved to the new predecessor; see `take_given_up`.
    pub(crate) given_up: Option<(Id, Id)>,
    pub(crate) succ: SuccessorList,
    pub(crate) fingers: FingerTable,
    pub(crate) dead: DeadSet,
    /// Stabilize rounds begun; the core's only notion of time.
    pub(crate) round: u64,
    pub(crate) probe_cursor: usize,
    pub(crate) finger_cursor: usize,
    /// Members presumed dead and bootstrap addresses, probed for ring unification.
    pub(crate) passive: PassiveList,
    /// Unification contacts handled, with the round (each is flooded once).
    pub(crate) unify_seen: HashMap<Id, u64>,
    /// The last round in which this node flooded a contact.
    pub(crate) unify_round: Option<u64>,
}

impl NodeState {
    /// A lone node: its own successor, no predecessor, owner of the whole circle.
    pub fn new(cfg: ChordConfig, me: Peer) -> NodeState {
        NodeState {
            succ: SuccessorList::new(cfg.successors),
            fingers: FingerTable::new(cfg.space),
            cfg,
            me,
            pred: None,
            range_start: None,
            given_up: None,
            dead: DeadSet::default(),
            round: 0,
            probe_cursor: 0,
            finger_cursor: 0,
            passive: PassiveList::default(),
            unify_seen: HashMap::new(),
            unify_round: None,
        }
    }

    pub fn config(&self) -> &ChordConfig {
        &self.cfg
    }

    pub fn space(&self) -> IdSpace {
        self.cfg.space
    }

    pub fn me(&self) -> &Peer {
        &self.me
    }

    pub fn id(&self) -> Id {
        self.me.id
    }

    pub fn predecessor(&self) -> Option<&Peer> {
        self.pred.as_ref()
    }

    /// The first successor; the node itself when it is alone.
    pub fn successor(&self) -> &Peer {
        self.succ.first().unwrap_or(&self.me)
    }

    pub fn successors(&self) -> &[Peer] {
        self.succ.as_slice()
    }

    pub fn fingers(&self) -> &FingerTable {
        &self.fingers
    }

    pub fn round(&self) -> u64 {
        self.round
    }

    pub fn is_known_dead(&self, id: Id) -> bool {
        self.dead.contains(id)
    }

    pub fn is_alone(&self) -> bool {
        self.succ.is_empty()
    }

    /// Whether this node is responsible for `key`: it lies in (pred, me], where pred is the
    /// last predecessor adopted (see `range_start`). A node that never had a predecessor
    /// claims nothing it cannot prove, except when alone.
    pub fn owns(&self, key: Id) -> bool {
        if self.is_alone() {
            return true;
        }
        match self.range_start {
            Some(start) => between_right(key, start, self.me.id),
            None => false,
        }
    }

    /// Adopts a predecessor (rectify, a leave notice, the ideal tables).
    pub(crate) fn set_predecessor(&mut self, p: Peer) {
        self.range_start = Some(p.id);
        self.pred = Some(p);
    }

    /// The owner of `key` as far as this node's own tables tell, without asking anyone: this
    /// node if it owns the key, else the successor-list entry whose arc (previous entry,
    /// entry] holds it. A guess for the data path, which the owner confirms (it refuses keys
    /// it does not own); lookups never use it, so hop counts stay the paper's.
    pub fn owner_hint(&self, key: Id) -> Option<Peer> {
        if self.owns(key) {
            return Some(self.me.clone());
        }
        let mut prev = self.me.id;
        for s in self.succ.as_slice() {
            if between_right(key, prev, s.id) {
                return Some(s.clone());
            }
            prev = s.id;
        }
        None
    }

    /// One routing step (Chord §4.3 `find_successor`, made iterative).
    pub fn find_step(&self, key: Id) -> Step {
        let succ = self.successor();
        let list = self.succ.as_slice();
        let successors = list[..list.len().min(2 * self.cfg.step_fanout)].to_vec();
        if between_right(key, self.me.id, succ.id) {
            return Step::Owner {
                owner: succ.clone(),
                successors,
            };
        }
        Step::Closer {
            candidates: self.closest_preceding(key, self.cfg.step_fanout),
            successors,
        }
    }

    /// Members among fingers and successors that lie in (me, key), in the order a lookup
    /// should try them (Chord's `closest_preceding_node`, with fallbacks): first up to `n`
    /// from the fingers and the first successor, closest to the key first; then up to `n`
    /// from the rest of the successor list as fallbacks. The successor list leads only while
    /// the node has no fingers yet: routing through it whenever it is closer would beat the
    /// paper's ½·log2 N only by making every list a partial membership table, and on a correct
    /// ring the fingers already give the O(log N) bound.
    pub fn closest_preceding(&self, key: Id, n: usize) -> Vec<Peer> {
        let space = self.cfg.space;
        let me = self.me.id;
        let in_range = |p: &&Peer| between_open(p.id, me, key);
        let by_closeness = |v: &mut Vec<&Peer>| {
            v.sort_by_key(|p| space.distance(p.id, key));
            v.dedup_by_key(|p| p.id);
        };
        let list = self.succ.as_slice();
        let lead = if self.fingers.is_empty() {
            list.len()
        } else {
            list.len().min(1)
        };
        let mut primary: Vec<&Peer> = self
            .fingers
            .iter()
            .chain(&list[..lead])
            .filter(in_range)
            .collect();
        by_closeness(&mut primary);
        primary.truncate(n);
        let mut fallback: Vec<&Peer> = list[lead..]
            .iter()
            .filter(in_range)
            .filter(|p| !primary.iter().any(|q| q.id == p.id))
            .collect();
        by_closeness(&mut fallback);
        fallback.truncate(n);
        primary.into_iter().chain(fallback).cloned().collect()
    }

    /// A call to `p` did not answer within the timeout: forget it everywhere (docs/protocol.md,
    /// Failure), remember the death for the small-ring rule, and keep it in the passive list:
    /// it may be alive on the other side of a partition (docs/protocol.md, "Ring unification").
    pub fn on_peer_dead(&mut self, p: &Peer) {
        let id = p.id;
        if id == self.me.id {
            return;
        }
        self.passive
            .remember(p.clone(), self.round, self.cfg.passive_capacity);
        self.succ.remove(id);
        self.fingers.remove(id);
        if self.pred.as_ref().is_some_and(|p| p.id == id) {
            self.pred = None;
        }
        self.dead.insert(id, self.round);
    }

    /// Direct evidence that `id` lives (it answered or called us) outweighs hearsay.
    pub fn on_peer_alive(&mut self, id: Id) {
        self.dead.remove(id);
    }

    /// Completes a join (docs/protocol.md, Join): `succ` answered the lookup of our id and sent its
    /// list. The predecessor stays unknown until someone rectifies us.
    pub fn join(&mut self, succ: &Peer, succ_list: &[Peer]) {
        self.pred = None;
        self.range_start = None;
        self.fingers.clear();
        self.on_peer_alive(succ.id);
        self.succ
            .rebuild(self.cfg.space, self.me.id, succ, succ_list, &self.dead);
    }

    /// Forgets every pointer: a node that left becomes a lone ring of one.
    pub fn reset(&mut self) {
        self.pred = None;
        self.range_start = None;
        self.succ = SuccessorList::new(self.cfg.successors);
        self.fingers.clear();
    }

    /// What a graceful leave must tell whom.
    pub fn leave_plan(&self) -> LeavePlan {
        LeavePlan {
            successor: self.succ.first().cloned(),
            predecessor: self.pred.clone().filter(|p| p.id != self.me.id),
            successors: self.succ.as_slice().to_vec(),
        }
    }

    /// A neighbour is leaving: if it is in our list, splice in its successors; if it is our
    /// predecessor, take `new_pred` instead.
    pub fn on_leave_notice(&mut self, leaving: &Peer, successors: &[Peer], new_pred: Option<Peer>) {
        let was_first = self.succ.first().is_some_and(|s| s.id == leaving.id);
        self.dead.insert(leaving.id, self.round);
        if was_first {
            match successors.iter().find(|p| p.id != leaving.id) {
                Some(head) => {
                    let (head, tail) = (head.clone(), successors.to_vec());
                    self.succ
                        .rebuild(self.cfg.space, self.me.id, &head, &tail, &self.dead)
                }
                None => {
                    self.succ.remove(leaving.id);
                }
            }
        } else {
            self.succ.remove(leaving.id);
        }
        self.fingers.remove(leaving.id);
        if self.pred.as_ref().is_some_and(|p| p.id == leaving.id) {
            self.pred = None;
            if let Some(p) = new_pred.filter(|p| p.id != self.me.id && !self.dead.contains(p.id)) {
                self.set_predecessor(p);
            }
        }
    }

    /// The range of keys a node that joined right before `succ` must receive from it:
    /// (succ's predecessor, me], or (succ, me] when succ has no predecessor we can trust.
    pub fn join_range(&self, succ: &Peer, succ_pred: Option<&Peer>) -> (Id, Id) {
        let from = succ_pred
            .filter(|p| p.id != self.me.id && between_open(self.me.id, p.id, succ.id))
            .map_or(succ.id, |p| p.id);
        (from, self.me.id)
    }

    /// Rebuilds the tables from the true membership: the simulator's fast build mode and the
    /// reference for tests. `ring` must be sorted by id and contain this node.
    pub fn set_ideal(&mut self, ring: &[Peer]) {
        let space = self.cfg.space;
        let i = ring.partition_point(|p| p.id < self.me.id);
        let n = ring.len();
        let after: Vec<Peer> = (1..n)
            .take(self.cfg.successors)
            .map(|k| ring[(i + k) % n].clone())
            .collect();
        self.succ = SuccessorList::new(self.cfg.successors);
        if let Some(head) = after.first() {
            self.succ
                .rebuild(space, self.me.id, head, &after[1..], &DeadSet::default());
        }
        self.pred = None;
        self.range_start = None;
        if n > 1 {
            self.set_predecessor(ring[(i + n - 1) % n].clone());
        }
        self.fingers = FingerTable::ideal(space, self.me.id, ring);
    }

    /// Drops every finger (for experiments on routing by successors alone).
    pub fn clear_fingers(&mut self) {
        self.fingers.clear();
    }
}
