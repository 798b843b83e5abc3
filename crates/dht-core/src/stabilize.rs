//! Stabilize (Zave's corrected version) and the periodic liveness checks.
//!
//! A round: ask the first successor that answers for its predecessor p and its list; if p is
//! live and in (me, s), ask p for its list and adopt p; otherwise adopt s's list; then rectify
//! the new successor (docs/protocol.md, Stabilize). The driver performs each [`StabilizeStep::Query`]
//! as a `GetState` call and each `Notify` as a rectify call.

use crate::interval::between_open;
use crate::{NodeState, Peer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StabilizeStep {
    /// Ask this peer for its predecessor and successor list; feed back the answer or timeout.
    Query(Peer),
    /// Tell this peer "I may be your predecessor"; the round is over.
    Notify(Peer),
    /// Nothing to do (a lone node).
    Done,
}

#[derive(Clone, Debug)]
enum Phase {
    /// Waiting for the first live successor.
    Successor,
    /// The successor `s` (with its list) named a predecessor between us; waiting for it.
    Candidate {
        s: Peer,
        s_list: Vec<Peer>,
    },
    Finished,
}

#[derive(Clone, Debug)]
pub struct Stabilize {
    phase: Phase,
}

impl Stabilize {
    /// Begins a round; this is the core's clock tick.
    pub fn begin(node: &mut NodeState) -> (Stabilize, StabilizeStep) {
        node.round += 1;
        let (round, ttl) = (node.round, node.cfg.dead_rounds);
        node.dead.expire(round, ttl);
        let mut st = Stabilize {
            phase: Phase::Successor,
        };
        let step = st.ask_successor(node);
        (st, step)
    }

    fn ask_successor(&mut self, node: &NodeState) -> StabilizeStep {
        if let Some(s) = node.succ.first() {
            self.phase = Phase::Successor;
            return StabilizeStep::Query(s.clone());
        }
        // Alone: our successor is ourselves, whose predecessor may be a node that joined us.
        match &node.pred {
            Some(p) => {
                self.phase = Phase::Candidate {
                    s: node.me.clone(),
                    s_list: Vec::new(),
                };
                StabilizeStep::Query(p.clone())
            }
            None => {
                self.phase = Phase::Finished;
                StabilizeStep::Done
            }
        }
    }

    /// `from` answered `GetState` with its predecessor and successor list.
    pub fn on_state(
        &mut self,
        node: &mut NodeState,
        from: &Peer,
        pred: Option<Peer>,
        list: &[Peer],
    ) -> StabilizeStep {
        node.on_peer_alive(from.id);
        match std::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::Successor => {
                let me = node.me.id;
                match pred {
                    Some(p)
                        if between_open(p.id, me, from.id)
                            && !node.dead.contains(p.id)
                            && p.id != me =>
                    {
                        self.phase = Phase::Candidate {
                            s: from.clone(),
                            s_list: list.to_vec(),
                        };
                        StabilizeStep::Query(p)
                    }
                    _ => adopt(node, from, list),
                }
            }
            Phase::Candidate { .. } => adopt(node, from, list),
            Phase::Finished => StabilizeStep::Done,
        }
    }

    /// `peer` did not answer `GetState` in time.
    pub fn on_timeout(&mut self, node: &mut NodeState, peer: &Peer) -> StabilizeStep {
        node.on_peer_dead(peer.id);
        match std::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::Successor => self.ask_successor(node),
            Phase::Candidate { s, s_list } if s.id != node.me.id => adopt(node, &s, &s_list),
            Phase::Candidate { .. } | Phase::Finished => StabilizeStep::Done,
        }
    }
}

fn adopt(node: &mut NodeState, head: &Peer, list: &[Peer]) -> StabilizeStep {
    let (space, me) = (node.cfg.space, node.me.id);
    node.succ.rebuild(space, me, head, list, &node.dead);
    match node.succ.first() {
        Some(s) => StabilizeStep::Notify(s.clone()),
        None => StabilizeStep::Done,
    }
}

impl NodeState {
    /// The successor-list entry beyond the first to liveness-check this round, round robin
    /// (docs/protocol.md small-ring rule). The driver pings it and reports a timeout as a death.
    pub fn next_probe(&mut self) -> Option<Peer> {
        let n = self.succ.len();
        if n < 2 {
            return None;
        }
        self.probe_cursor = self.probe_cursor % (n - 1) + 1;
        self.succ.as_slice().get(self.probe_cursor).cloned()
    }

    /// Check predecessor: the predecessor did not answer, so forget it.
    pub fn on_predecessor_dead(&mut self) {
        if let Some(p) = self.pred.take() {
            self.dead.insert(p.id, self.round);
        }
    }
}
