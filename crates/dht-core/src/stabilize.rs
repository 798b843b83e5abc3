//! Stabilize (Zave's corrected version).
//!
//! A round: ask the first successor that answers for its predecessor p and its list; if p is
//! live and in (me, s), ask p for its list and adopt p; otherwise adopt s's list; then rectify
//! the new successor (docs/protocol.md, Stabilize). The driver performs each
//! [`StabilizeStep::Query`] and [`StabilizeStep::Retry`] as a `GetState` call and the
//! [`StabilizeStep::Notify`] as a rectify call.
//!
//! Two rules that drivers used to carry themselves are the core's:
//!
//! - **Never a query to oneself.** Whenever the round would ask this node (a lone node is its
//!   own successor), the core reads the node's own predecessor and list instead; every
//!   `Query` and `Retry` names another node.
//! - **Confirm once.** The first time a peer fails to answer in a round,
//!   [`Stabilize::on_timeout`] returns [`StabilizeStep::Retry`] for it and changes nothing: the
//!   driver asks the same peer again on a fresh connection (dhtd drops its channel first). Only a
//!   second failure in the same round presumes it dead (docs/protocol.md, "Confirm once on a
//!   fresh connection"). A peer that answers with a refusal is not asked again
//!   ([`Stabilize::on_refused`]).

use crate::interval::between_open;
use crate::{Id, NodeState, Peer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StabilizeStep {
    /// Ask this peer (never the node itself) for its predecessor and successor list; feed back
    /// the answer ([`Stabilize::on_state`]), a timeout ([`Stabilize::on_timeout`]) or a refusal
    /// ([`Stabilize::on_refused`]).
    Query(Peer),
    /// The query to this peer failed once: ask it again, on a fresh connection, and feed back
    /// the outcome exactly as for a [`StabilizeStep::Query`].
    Retry(Peer),
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
    /// Peers that failed once this round and were given their second chance.
    retried: Vec<Id>,
}

impl Stabilize {
    /// Begins a round; this is the core's clock tick.
    pub fn begin(node: &mut NodeState) -> (Stabilize, StabilizeStep) {
        node.round += 1;
        let (round, ttl) = (node.round, node.cfg.dead_rounds);
        node.dead.expire(round, ttl);
        let mut st = Stabilize {
            phase: Phase::Successor,
            retried: Vec::new(),
        };
        let step = st.ask_successor(node);
        let step = st.answer_own_queries(node, step);
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

    /// Answers from the node's own state every query the round addresses to the node itself,
    /// so that drivers only ever query others.
    fn answer_own_queries(
        &mut self,
        node: &mut NodeState,
        mut step: StabilizeStep,
    ) -> StabilizeStep {
        while let StabilizeStep::Query(p) | StabilizeStep::Retry(p) = &step {
            if p.id != node.me.id {
                break;
            }
            let me = node.me.clone();
            let (pred, list) = (node.pred.clone(), node.succ.as_slice().to_vec());
            step = self.state_step(node, &me, pred, &list);
        }
        step
    }

    /// `from` answered `GetState` with its predecessor and successor list.
    pub fn on_state(
        &mut self,
        node: &mut NodeState,
        from: &Peer,
        pred: Option<Peer>,
        list: &[Peer],
    ) -> StabilizeStep {
        let step = self.state_step(node, from, pred, list);
        self.answer_own_queries(node, step)
    }

    fn state_step(
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

    /// `peer` did not answer `GetState` in time (or could not be reached). The first time in
    /// this round the answer is [`StabilizeStep::Retry`] and nothing changes; the second time
    /// the peer is presumed dead, as by [`Stabilize::on_refused`].
    pub fn on_timeout(&mut self, node: &mut NodeState, peer: &Peer) -> StabilizeStep {
        if !matches!(self.phase, Phase::Finished) && !self.retried.contains(&peer.id) {
            self.retried.push(peer.id);
            return StabilizeStep::Retry(peer.clone());
        }
        self.on_refused(node, peer)
    }

    /// `peer` cannot serve `GetState` (it refused, or failed twice): it is presumed dead
    /// ([`NodeState::on_peer_dead`]) and the round goes on without it, at once.
    pub fn on_refused(&mut self, node: &mut NodeState, peer: &Peer) -> StabilizeStep {
        node.on_peer_dead(peer);
        let step = match std::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::Successor => self.ask_successor(node),
            Phase::Candidate { s, s_list } if s.id != node.me.id => adopt(node, &s, &s_list),
            Phase::Candidate { .. } | Phase::Finished => StabilizeStep::Done,
        };
        self.answer_own_queries(node, step)
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

/// One event in, the exact step out: each test builds a state, feeds one answer or timeout,
/// and compares the whole [`StabilizeStep`] and the tables it leaves.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChordConfig;

    fn p(v: u64) -> Peer {
        Peer::new(Id::from_u64(v), format!("n{v}"))
    }

    fn ids(s: &NodeState) -> Vec<u64> {
        s.successors().iter().map(|p| p.id.low_u64()).collect()
    }

    /// Node `me` (8-bit ids, r = 4) whose successor list is `list`.
    fn node(me: u64, list: &[u64]) -> NodeState {
        let cfg = ChordConfig::new(8, 64).unwrap().with_successors(4).unwrap();
        let mut s = NodeState::new(cfg, p(me));
        if let Some((&head, tail)) = list.split_first() {
            let tail: Vec<Peer> = tail.iter().map(|&v| p(v)).collect();
            s.join(&p(head), &tail);
        }
        s
    }

    #[test]
    fn zave_stabilize_begins_by_asking_the_first_successor() {
        // docs/protocol.md, Stabilize, steps 1-2.
        let mut n = node(10, &[30, 50]);
        let (_, step) = Stabilize::begin(&mut n);
        assert_eq!(step, StabilizeStep::Query(p(30)));
        assert_eq!(n.round(), 1);
    }

    #[test]
    fn zave_stabilize_adopts_p_in_n_s_after_asking_p_for_its_list() {
        // Zave (TSE 2017), corrected stabilize: p in (n, s) becomes the successor only once it
        // answered, and the list is p followed by p's list.
        let mut n = node(10, &[30, 50]);
        let (mut st, _) = Stabilize::begin(&mut n);
        let step = st.on_state(&mut n, &p(30), Some(p(20)), &[p(50)]);
        assert_eq!(step, StabilizeStep::Query(p(20)));
        assert_eq!(ids(&n), vec![30, 50]);
        let step = st.on_state(&mut n, &p(20), Some(p(10)), &[p(30), p(50)]);
        assert_eq!(step, StabilizeStep::Notify(p(20)));
        assert_eq!(ids(&n), vec![20, 30, 50]);
    }

    #[test]
    fn zave_stabilize_keeps_s_when_its_predecessor_is_not_between() {
        // docs/protocol.md, Stabilize, step 4: the list becomes s followed by s's list.
        let mut n = node(10, &[30]);
        let (mut st, _) = Stabilize::begin(&mut n);
        let step = st.on_state(&mut n, &p(30), Some(p(10)), &[p(50), p(70), p(10)]);
        assert_eq!(step, StabilizeStep::Notify(p(30)));
        assert_eq!(ids(&n), vec![30, 50, 70]);
    }

    #[test]
    fn zave_stabilize_keeps_s_when_p_between_is_known_dead() {
        // docs/protocol.md, Stabilize, step 3: p must not be in the dead set.
        let mut n = node(10, &[30]);
        n.on_peer_dead(&p(20));
        let (mut st, _) = Stabilize::begin(&mut n);
        let step = st.on_state(&mut n, &p(30), Some(p(20)), &[p(50)]);
        assert_eq!(step, StabilizeStep::Notify(p(30)));
        assert_eq!(ids(&n), vec![30, 50]);
    }

    #[test]
    fn confirm_once_a_silent_successor_is_retried_then_removed() {
        // docs/protocol.md, "Confirm once on a fresh connection": the first failure changes
        // nothing; the second presumes the successor dead and asks the next entry.
        let mut n = node(10, &[30, 50]);
        let (mut st, _) = Stabilize::begin(&mut n);
        assert_eq!(st.on_timeout(&mut n, &p(30)), StabilizeStep::Retry(p(30)));
        assert_eq!(ids(&n), vec![30, 50]);
        assert!(!n.is_known_dead(Id::from_u64(30)));
        assert_eq!(st.on_timeout(&mut n, &p(30)), StabilizeStep::Query(p(50)));
        assert_eq!(ids(&n), vec![50]);
        assert!(n.is_known_dead(Id::from_u64(30)));
    }

    #[test]
    fn confirm_once_a_retry_that_answers_counts_as_an_answer() {
        let mut n = node(10, &[30, 50]);
        let (mut st, _) = Stabilize::begin(&mut n);
        assert_eq!(st.on_timeout(&mut n, &p(30)), StabilizeStep::Retry(p(30)));
        let step = st.on_state(&mut n, &p(30), Some(p(10)), &[p(50)]);
        assert_eq!(step, StabilizeStep::Notify(p(30)));
        assert_eq!(ids(&n), vec![30, 50]);
    }

    #[test]
    fn confirm_once_a_refusal_is_not_retried() {
        // docs/protocol.md, Failure detection: a successor that refuses is skipped at once.
        let mut n = node(10, &[30, 50]);
        let (mut st, _) = Stabilize::begin(&mut n);
        assert_eq!(st.on_refused(&mut n, &p(30)), StabilizeStep::Query(p(50)));
        assert_eq!(ids(&n), vec![50]);
    }

    #[test]
    fn zave_stabilize_a_silent_p_between_leaves_s_and_its_list() {
        // docs/protocol.md, Stabilize, step 3: if p does not answer, p is recorded dead and
        // the list is s followed by s's list.
        let mut n = node(10, &[30]);
        let (mut st, _) = Stabilize::begin(&mut n);
        let step = st.on_state(&mut n, &p(30), Some(p(20)), &[p(50)]);
        assert_eq!(step, StabilizeStep::Query(p(20)));
        assert_eq!(st.on_timeout(&mut n, &p(20)), StabilizeStep::Retry(p(20)));
        assert_eq!(st.on_timeout(&mut n, &p(20)), StabilizeStep::Notify(p(30)));
        assert_eq!(ids(&n), vec![30, 50]);
        assert!(n.is_known_dead(Id::from_u64(20)));
    }

    #[test]
    fn a_lone_node_without_predecessor_has_nothing_to_do() {
        let mut n = node(10, &[]);
        let (_, step) = Stabilize::begin(&mut n);
        assert_eq!(step, StabilizeStep::Done);
    }

    #[test]
    fn a_lone_node_asks_its_predecessor_not_itself() {
        // docs/protocol.md, Stabilize: a lone node whose predecessor is set asks that
        // predecessor for its list; its own state answers the query to itself, so no step
        // ever names the node.
        let mut n = node(10, &[]);
        n.rectify(&p(200));
        let (mut st, step) = Stabilize::begin(&mut n);
        assert_eq!(step, StabilizeStep::Query(p(200)));
        let step = st.on_state(&mut n, &p(200), Some(p(10)), &[p(10)]);
        assert_eq!(step, StabilizeStep::Notify(p(200)));
        assert_eq!(ids(&n), vec![200]);
    }

    #[test]
    fn a_lone_node_whose_predecessor_is_silent_ends_the_round_alone() {
        let mut n = node(10, &[]);
        n.rectify(&p(200));
        let (mut st, _) = Stabilize::begin(&mut n);
        assert_eq!(st.on_timeout(&mut n, &p(200)), StabilizeStep::Retry(p(200)));
        assert_eq!(st.on_timeout(&mut n, &p(200)), StabilizeStep::Done);
        assert_eq!(n.predecessor(), None);
        assert!(n.is_alone());
    }
}
