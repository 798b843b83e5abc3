//! The periodic liveness checks: the small-ring probe of a successor-list entry beyond the
//! first, and check-predecessor (docs/protocol.md, "Small rings" and "Check predecessor").
//!
//! Each check is a [`Probe`]: the driver pings [`Probe::peer`]; an answer needs nothing more
//! (drop the probe). A failed ping goes to [`Probe::on_timeout`], which follows the
//! confirm-once rule: the first failure gives [`ProbeStep::Retry`] (ping the same peer again,
//! on a fresh connection) and changes nothing; the second gives [`ProbeStep::Dead`] after the
//! core has acted on it (the entry is presumed dead, or the predecessor forgotten). The driver
//! keeps the probe with the call, so two checks in flight never share a counter.

use crate::{NodeState, Peer};

/// One liveness check in progress; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    peer: Peer,
    of: Checked,
    failed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checked {
    /// A successor-list entry beyond the first.
    ListEntry,
    Predecessor,
}

/// What a failed ping of a [`Probe`] leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeStep {
    /// First failure: ping this peer once more on a fresh connection and feed back the outcome.
    Retry(Peer),
    /// Second failure: the core has acted (the entry was presumed dead, or the predecessor
    /// cleared if it still was this peer); the driver drops its connection to it.
    Dead(Peer),
}

impl Probe {
    /// The peer to ping.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The ping of [`Probe::peer`] failed as if the peer were unreachable.
    pub fn on_timeout(&mut self, node: &mut NodeState) -> ProbeStep {
        if !self.failed {
            self.failed = true;
            return ProbeStep::Retry(self.peer.clone());
        }
        match self.of {
            Checked::ListEntry => node.on_peer_dead(&self.peer),
            Checked::Predecessor => node.on_predecessor_dead(&self.peer),
        }
        ProbeStep::Dead(self.peer.clone())
    }
}

impl NodeState {
    /// The successor-list entry beyond the first to liveness-check this round, round robin
    /// (docs/protocol.md small-ring rule).
    pub fn next_probe(&mut self) -> Option<Probe> {
        let n = self.succ.len();
        if n < 2 {
            return None;
        }
        self.probe_cursor = self.probe_cursor % (n - 1) + 1;
        self.succ.as_slice().get(self.probe_cursor).map(|p| Probe {
            peer: p.clone(),
            of: Checked::ListEntry,
            failed: false,
        })
    }

    /// Check predecessor: a liveness check of the current predecessor, if there is one.
    pub fn check_predecessor(&self) -> Option<Probe> {
        self.pred.as_ref().map(|p| Probe {
            peer: p.clone(),
            of: Checked::Predecessor,
            failed: false,
        })
    }

    /// The predecessor `p` did not answer: forget it and record it dead. A stale report (the
    /// predecessor changed while `p` was being pinged) changes nothing.
    pub fn on_predecessor_dead(&mut self, p: &Peer) {
        if self.pred.as_ref().is_some_and(|q| q.id == p.id) {
            self.pred = None;
            self.dead.insert(p.id, self.round);
            self.passive
                .remember(p.clone(), self.round, self.cfg.passive_capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChordConfig, Id};

    fn p(v: u64) -> Peer {
        Peer::new(Id::from_u64(v), format!("n{v}"))
    }

    /// Node 10 (8-bit ids, r = 4) with list [30, 50, 70] and predecessor 200.
    fn node() -> NodeState {
        let cfg = ChordConfig::new(8, 64).unwrap().with_successors(4).unwrap();
        let mut s = NodeState::new(cfg, p(10));
        s.join(&p(30), &[p(50), p(70)]);
        s.rectify(&p(200));
        s
    }

    #[test]
    fn small_ring_rule_probes_entries_beyond_the_first_round_robin_confirmed_once() {
        // docs/protocol.md, small-ring rule 1, with the confirm-once rule.
        let mut n = node();
        let mut probe = n.next_probe().unwrap();
        assert_eq!(probe.peer(), &p(50));
        assert_eq!(probe.on_timeout(&mut n), ProbeStep::Retry(p(50)));
        assert_eq!(n.successors(), &[p(30), p(50), p(70)]);
        assert_eq!(probe.on_timeout(&mut n), ProbeStep::Dead(p(50)));
        assert_eq!(n.successors(), &[p(30), p(70)]);
        assert!(n.is_known_dead(Id::from_u64(50)));
        assert_eq!(n.next_probe().map(|q| q.peer().clone()), Some(p(70)));
    }

    #[test]
    fn check_predecessor_forgets_a_silent_predecessor_after_one_retry() {
        // docs/protocol.md, Check predecessor: the predecessor is cleared and recorded dead;
        // range_start is not changed.
        let mut n = node();
        let mut probe = n.check_predecessor().unwrap();
        assert_eq!(probe.on_timeout(&mut n), ProbeStep::Retry(p(200)));
        assert_eq!(n.predecessor(), Some(&p(200)));
        assert_eq!(probe.on_timeout(&mut n), ProbeStep::Dead(p(200)));
        assert_eq!(n.predecessor(), None);
        assert!(n.is_known_dead(Id::from_u64(200)));
        assert_eq!(n.range_start(), Some(Id::from_u64(200)));
    }

    #[test]
    fn check_predecessor_ignores_a_stale_report() {
        // The predecessor changed (a rectify) while the old one was being pinged.
        let mut n = node();
        let mut probe = n.check_predecessor().unwrap();
        n.rectify(&p(250));
        assert_eq!(probe.on_timeout(&mut n), ProbeStep::Retry(p(200)));
        assert_eq!(probe.on_timeout(&mut n), ProbeStep::Dead(p(200)));
        assert_eq!(n.predecessor(), Some(&p(250)));
        assert!(!n.is_known_dead(Id::from_u64(200)));
    }

    #[test]
    fn no_probe_without_a_second_entry_or_a_predecessor() {
        let cfg = ChordConfig::new(8, 64).unwrap();
        let mut n = NodeState::new(cfg, p(10));
        assert_eq!(n.next_probe(), None);
        assert_eq!(n.check_predecessor(), None);
    }
}
