//! Ring unification: how two (or more) rings that a partition made become one again
//! (docs/protocol.md, "Ring unification").
//!
//! Stabilize repairs one ring; it never looks outside it. After a partition heals, each side is
//! a correct ring that has forgotten the other. The rule here, in three parts:
//!
//! - **Detect.** Every round the node probes the peers of its passive list that are due
//!   ([`NodeState::rejoin_due`]): a lookup of its own id started at that peer
//!   ([`Lookup::start_via`]). In the node's own ring that lookup ends at the node itself (or at
//!   one of its successors, while its predecessor has not yet adopted it): a false alarm, which
//!   costs that one lookup and forgets the entry. An answer naming any other node means the
//!   peer belongs to another ring.
//! - **Zip.** A node that learns of another ring adopts the owner that ring gave for its own id
//!   as first successor if it lies between the node and its successor: it is then the closest
//!   live member the node knows ahead of it, exactly what stabilize would adopt. Stabilize and
//!   rectify do the rest, as for a join.
//! - **Spread.** The detecting node floods the contact through its own ring (to its
//!   predecessor, successor and fingers; each node forwards a contact once, and handles at most
//!   one contact per round), and tells the contact about itself, so the other ring floods too.
//!   Every node that receives a contact looks its own id up through it and zips. A flood reaches
//!   every member in about log N message delays, so every node finds its successor in the union
//!   at once instead of waiting for the merge to crawl round the ring one node per round.
//!
//! Three rings or more merge pairwise, in parallel: each detection floods one contact.

use crate::interval::between_open;
use crate::{Lookup, NodeState, Peer};

/// What a lookup through a contact showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The lookup failed: nobody there answered (the peer may still be dead).
    NoAnswer,
    /// The contact's ring names this node (or one of its successors) for its id: one ring.
    SameRing,
    /// The contact is in another ring; `adopted` says whether its owner of our id became our
    /// first successor.
    Foreign { owner: Peer, adopted: bool },
}

/// Unification messages to send: tell `to` about the ring member `contact`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub to: Peer,
    pub contact: Peer,
}

/// How a node handles a contact it was told about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnNotice {
    /// Look this node's own id up through this contact, then call
    /// [`NodeState::on_unify_lookup`].
    pub lookup_via: Option<Peer>,
    /// Forward the contact (the flood).
    pub forward: Vec<Notice>,
}

impl NodeState {
    /// Remembers bootstrap addresses in the passive list, so a node started while its peers
    /// were unreachable finds them later.
    pub fn remember_bootstraps(&mut self, peers: &[Peer]) {
        let (round, cap) = (self.round, self.cfg.passive_capacity);
        for p in peers.iter().filter(|p| p.id != self.me.id) {
            self.passive.remember(p.clone(), round, cap);
        }
    }

    /// The passive list (for persistence and `info`).
    pub fn passive(&self) -> &crate::PassiveList {
        &self.passive
    }

    /// The passive-list peers to probe this round: start a [`Lookup::start_via`] of this node's
    /// id through each and feed the outcome to [`NodeState::on_rejoin_probe`].
    pub fn rejoin_due(&mut self) -> Vec<Peer> {
        let (round, window, max) = (
            self.round,
            self.cfg.rejoin_window_rounds,
            self.cfg.rejoin_backoff_max_rounds,
        );
        self.passive.due(round, window, max)
    }

    /// A rejoin probe of `contact` ended with `outcome` (the lookup's last step: `Done` or
    /// `Failed`). A false alarm forgets the entry; another ring starts a unification.
    pub fn on_rejoin_probe(
        &mut self,
        contact: &Peer,
        lookup: &Lookup,
        owner: Option<&Peer>,
    ) -> (Verdict, Vec<Notice>) {
        let verdict = self.assess(lookup, owner);
        let notices = match &verdict {
            Verdict::NoAnswer => Vec::new(),
            Verdict::SameRing => {
                self.passive.forget(contact.id);
                Vec::new()
            }
            Verdict::Foreign { .. } => {
                let mut out = self.flood(contact);
                out.push(Notice {
                    to: contact.clone(),
                    contact: self.me.clone(),
                });
                out
            }
        };
        (verdict, notices)
    }

    /// Another node told us about `contact`. Handled once per contact, and at most one
    /// contact per round, so simultaneous floods cost each node one lookup per round.
    pub fn on_unify_notice(&mut self, contact: &Peer) -> OnNotice {
        if contact.id == self.me.id
            || self.unify_seen.contains_key(&contact.id)
            || self.unify_round == Some(self.round)
        {
            return OnNotice::default();
        }
        OnNotice {
            forward: self.flood(contact),
            lookup_via: Some(contact.clone()),
        }
    }

    /// The lookup started by [`NodeState::on_unify_notice`] ended.
    pub fn on_unify_lookup(&mut self, lookup: &Lookup, owner: Option<&Peer>) -> Verdict {
        self.assess(lookup, owner)
    }

    /// Marks `contact` handled this round and lists the notices that flood it through this
    /// node's ring: predecessor, successor and distinct fingers.
    fn flood(&mut self, contact: &Peer) -> Vec<Notice> {
        let round = self.round;
        let ttl = self.cfg.dead_rounds.max(1) * 4;
        self.unify_seen
            .retain(|_, r| round.saturating_sub(*r) < ttl);
        self.unify_seen.insert(contact.id, round);
        self.unify_round = Some(round);
        let mut to: Vec<Peer> = Vec::new();
        let neighbours = self
            .pred
            .iter()
            .chain(self.succ.first())
            .chain(self.fingers.iter());
        for p in neighbours {
            if p.id != self.me.id && p.id != contact.id && !to.iter().any(|q| q.id == p.id) {
                to.push(p.clone());
            }
        }
        to.into_iter()
            .map(|to| Notice {
                to,
                contact: contact.clone(),
            })
            .collect()
    }

    /// Judges a lookup of this node's id through another node, and zips if it found a closer
    /// successor. Every node that answered is alive, whatever this node believed.
    fn assess(&mut self, lookup: &Lookup, owner: Option<&Peer>) -> Verdict {
        for id in lookup.responders() {
            self.on_peer_alive(id);
        }
        let Some(owner) = owner else {
            return Verdict::NoAnswer;
        };
        if owner.id == self.me.id || self.succ.contains(owner.id) {
            return Verdict::SameRing;
        }
        // Another ring answered: the deaths this node remembers are most likely that ring's
        // members, seen from the other side of the partition. Filtering them out of copied
        // lists (the small-ring rule) would keep the rings apart for `dead_rounds`; a member
        // that really is dead is found again by the next probes.
        self.dead.clear();
        let closer = self.is_alone() || between_open(owner.id, self.me.id, self.successor().id);
        // The other ring's members after our id, merged with ours in clockwise order, are the
        // union's successors: if the owner is closer than our successor it becomes the first.
        self.on_peer_alive(owner.id);
        let theirs = lookup.owner_list(owner.id);
        let theirs = if theirs.is_empty() {
            std::slice::from_ref(owner)
        } else {
            theirs
        };
        let (space, me) = (self.cfg.space, self.me.id);
        self.succ.merge(space, me, theirs, &self.dead);
        Verdict::Foreign {
            owner: owner.clone(),
            adopted: closer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChordConfig, Id, LookupStep, Step};

    fn p(v: u64) -> Peer {
        Peer::new(Id::from_u64(v), format!("n{v}"))
    }

    fn cfg() -> ChordConfig {
        ChordConfig::new(8, 64).unwrap().with_successors(2).unwrap()
    }

    /// Node 10 of the ring {10, 90, 200}.
    fn node() -> NodeState {
        let mut s = NodeState::new(cfg(), p(10));
        s.set_ideal(&[p(10), p(90), p(200)]);
        s
    }

    /// A lookup of 10 through `via`, answered by `via` naming `owner`.
    fn answered(n: &NodeState, via: u64, owner: u64) -> (Lookup, Option<Peer>) {
        let (mut l, step) = Lookup::start_via(n, n.id(), p(via));
        assert_eq!(step, LookupStep::Ask(p(via)));
        let reply = Step::Owner {
            owner: p(owner),
            successors: vec![p(owner)],
        };
        match l.on_reply(&p(via), reply) {
            LookupStep::Done { owner, .. } => (l, Some(owner)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_false_alarm_forgets_the_entry_and_sends_nothing() {
        let mut n = node();
        n.on_peer_dead(&p(90));
        assert!(n.passive().contains(Id::from_u64(90)));
        let (l, owner) = answered(&n, 90, 10);
        let (v, notices) = n.on_rejoin_probe(&p(90), &l, owner.as_ref());
        assert_eq!(v, Verdict::SameRing);
        assert!(notices.is_empty());
        assert!(!n.passive().contains(Id::from_u64(90)));
        assert!(!n.is_known_dead(Id::from_u64(90)), "90 answered: alive");
    }

    #[test]
    fn a_foreign_owner_closer_than_the_successor_is_adopted_and_the_contact_flooded() {
        let mut n = node();
        let (l, owner) = answered(&n, 150, 40);
        let (v, notices) = n.on_rejoin_probe(&p(150), &l, owner.as_ref());
        assert_eq!(
            v,
            Verdict::Foreign {
                owner: p(40),
                adopted: true
            }
        );
        assert_eq!(n.successor(), &p(40));
        assert_eq!(n.successors(), &[p(40), p(90)]);
        let to: Vec<(u64, u64)> = notices
            .iter()
            .map(|x| (x.to.id.low_u64(), x.contact.id.low_u64()))
            .collect();
        // Predecessor, successor (now 40), fingers; and the contact learns about us.
        assert!(to.contains(&(200, 150)) && to.contains(&(40, 150)) && to.contains(&(150, 10)));
        // A second contact in the same round is not flooded again.
        assert_eq!(n.on_unify_notice(&p(160)), OnNotice::default());
    }

    #[test]
    fn a_foreign_owner_beyond_the_successor_is_not_adopted_but_still_flooded() {
        let mut n = node();
        let (l, owner) = answered(&n, 150, 120);
        let (v, notices) = n.on_rejoin_probe(&p(150), &l, owner.as_ref());
        assert_eq!(
            v,
            Verdict::Foreign {
                owner: p(120),
                adopted: false
            }
        );
        assert_eq!(n.successor(), &p(90));
        assert!(!notices.is_empty());
    }

    #[test]
    fn a_notice_is_handled_once_per_contact() {
        let mut n = node();
        let first = n.on_unify_notice(&p(150));
        assert_eq!(first.lookup_via, Some(p(150)));
        assert!(first.forward.iter().all(|x| x.contact == p(150)));
        n.round += 1;
        assert_eq!(n.on_unify_notice(&p(150)), OnNotice::default());
        assert_eq!(n.on_unify_notice(&p(10)), OnNotice::default());
        assert_eq!(n.on_unify_notice(&p(160)).lookup_via, Some(p(160)));
    }

    #[test]
    fn no_answer_keeps_the_entry() {
        let mut n = node();
        n.on_peer_dead(&p(90));
        let (mut l, _) = Lookup::start_via(&n, n.id(), p(90));
        let step = l.on_timeout(&p(90));
        assert!(matches!(step, LookupStep::Failed { .. }));
        let (v, _) = n.on_rejoin_probe(&p(90), &l, None);
        assert_eq!(v, Verdict::NoAnswer);
        assert!(n.passive().contains(Id::from_u64(90)));
    }
}
