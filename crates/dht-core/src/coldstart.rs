//! Cold start: how nodes that share one bootstrap list agree on who starts the ring
//! (docs/protocol.md, "Cold start").
//!
//! Chord's join needs a member to join through. When every node of a LAN starts at once (first
//! boot, or after a power cut) with the same bootstrap list, no node is a member yet: each one
//! asks the others, each answers "still waiting", and without a rule nobody ever starts. The
//! rule here: a waiting node probes its bootstraps every round and is probed by them; it joins
//! through any node that answers as a member; otherwise, among the waiting nodes it has heard
//! of (itself included), the one with the lowest id starts (or resumes) the ring alone, and the
//! others then join it.
//!
//! Two refinements make the rule hold when views differ:
//!
//! - *Hearsay of the lowest.* Every waiting node tells whoever probes it (and whomever it
//!   probes) the lowest waiting node it heard from directly. A node that hears of a lower one
//!   defers to it and probes it too, so nodes whose lists differ (a list of a few seeds, or
//!   nodes that each list a different neighbour) still agree. Only direct knowledge is passed
//!   on, refreshed every round, so a node that died drops out of everyone's view within two
//!   rounds and the next lowest takes over.
//! - *Confirmation.* A node starts the ring only after being the lowest it knows of in
//!   [`ColdStart::CONFIRM_ROUNDS`] consecutive rounds. A node that came up just after our first
//!   probe is heard by the second (it listens before it probes), so two nodes both starting
//!   needs a node invisible for two whole rounds: a partition, which ring unification handles.
//!
//! - *Only listed nodes start.* A node may start the ring only if it is *eligible*: some
//!   bootstrap list names it (its own, or a peer's that probes it because its list names it).
//!   Every eligible node is then probed directly, every round, by every node whose list names
//!   it, so the two-round argument above holds for every node that could start. A node off
//!   every list (a late addition pointed at a few seeds) only ever joins: otherwise it could
//!   confirm itself on hearsay a round stale, or start and then be forgotten by seeds that
//!   knew it only from its probes (both found by the simulator, `dht-sim cold-start`).
//!
//! A node that hears nothing at all keeps waiting: starting alone would make a ring of its
//! own beside the one its peers may be forming. A node started without any bootstrap address
//! (other than its own) starts a ring at once; that is the driver's decision, not this one's.

use crate::{Id, Peer};

/// How a node that answers a cold-start probe stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Standing {
    /// It serves a ring: join through it.
    Member,
    /// It waits for a ring to join or start, like us: a candidate to start one.
    Waiting,
    /// It decided to join a member and is doing so: neither a candidate nor a way in yet.
    Joining,
}

/// One thing heard in a round: a bootstrap's answer to our probe, or a probe we received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    pub peer: Peer,
    pub standing: Standing,
    /// For a waiting peer: the lowest eligible waiting node it heard from directly, itself
    /// included if eligible.
    pub lowest: Option<Peer>,
    /// Whether the peer may start a ring (a bootstrap list names it).
    pub eligible: bool,
}

impl Heard {
    pub fn member(peer: Peer) -> Heard {
        Heard {
            peer,
            standing: Standing::Member,
            lowest: None,
            eligible: true,
        }
    }

    /// A waiting peer that a bootstrap list names (it may start the ring).
    pub fn waiting(peer: Peer, lowest: Option<Peer>) -> Heard {
        Heard {
            peer,
            standing: Standing::Waiting,
            lowest,
            eligible: true,
        }
    }

    /// A waiting peer that no list names: it will only ever join.
    pub fn waiting_unlisted(peer: Peer, lowest: Option<Peer>) -> Heard {
        Heard {
            eligible: false,
            ..Heard::waiting(peer, lowest)
        }
    }
}

/// What a waiting node does after a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColdStartStep {
    /// Join the ring through one of these members (try them in this order).
    Join(Vec<Peer>),
    /// Start the ring (or resume it, with the data this node kept): the others join us.
    Start,
    /// Nothing decisive yet: probe again next round, adding `probe` (nodes others told us of).
    Wait { probe: Vec<Peer> },
}

/// The cold-start decision of one waiting node, round after round.
#[derive(Clone, Debug)]
pub struct ColdStart {
    me: Peer,
    /// Consecutive rounds in which this node was the lowest waiting node it knew of.
    confirmed: u32,
    /// The lowest eligible waiting node heard from directly in the last round (us included
    /// if eligible): what we tell others.
    lowest: Option<Peer>,
}

/// Total order on candidates: by id, then by address (ids collide only with tiny hash sizes).
fn key(p: &Peer) -> (Id, &str) {
    (p.id, &p.addr)
}

impl ColdStart {
    /// Rounds a node must be the lowest it knows of before it starts the ring.
    pub const CONFIRM_ROUNDS: u32 = 2;

    pub fn new(me: Peer) -> ColdStart {
        ColdStart {
            lowest: None,
            me,
            confirmed: 0,
        }
    }

    /// The lowest eligible waiting node this one heard from directly in its last round
    /// (itself if eligible and none is lower): the hearsay it passes on.
    pub fn lowest(&self) -> Option<&Peer> {
        self.lowest.as_ref()
    }

    /// Decides after one round, from everything heard in it (answers to our probes and
    /// probes we received; duplicates and our own address are ignored). `eligible`: whether
    /// this node may start the ring (a bootstrap list names it).
    pub fn on_round(&mut self, heard: &[Heard], eligible: bool) -> ColdStartStep {
        let others = heard.iter().filter(|h| h.peer != self.me);
        let mut members: Vec<Peer> = Vec::new();
        let mut direct: Option<Peer> = eligible.then(|| self.me.clone());
        let mut reported: Vec<Peer> = Vec::new();
        for h in others.clone() {
            match h.standing {
                Standing::Member => {
                    if !members.contains(&h.peer) {
                        members.push(h.peer.clone());
                    }
                }
                Standing::Waiting => {
                    if h.eligible && direct.as_ref().is_none_or(|d| key(&h.peer) < key(d)) {
                        direct = Some(h.peer.clone());
                    }
                    if let Some(l) = &h.lowest {
                        if *l != self.me && !reported.contains(l) {
                            reported.push(l.clone());
                        }
                    }
                }
                Standing::Joining => {}
            }
        }
        self.lowest = direct.clone();
        if !members.is_empty() {
            self.confirmed = 0;
            return ColdStartStep::Join(members);
        }
        let probe: Vec<Peer> = reported
            .into_iter()
            .filter(|r| !others.clone().any(|h| h.peer == *r))
            .collect();
        let lowest_known = probe.iter().fold(direct.as_ref(), |low, p| match low {
            Some(l) if key(l) <= key(p) => Some(l),
            _ => Some(p),
        });
        let candidates = others.clone().any(|h| h.standing == Standing::Waiting);
        if !eligible || !candidates || lowest_known != Some(&self.me) {
            self.confirmed = 0;
            return ColdStartStep::Wait { probe };
        }
        self.confirmed += 1;
        if self.confirmed >= Self::CONFIRM_ROUNDS {
            ColdStartStep::Start
        } else {
            ColdStartStep::Wait { probe }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdSpace;

    fn p(id: u64) -> Peer {
        Peer::new(Id::from_u64(id), format!("10.0.0.{id}:5000"))
    }

    fn wait(id: u64, lowest: u64) -> Heard {
        Heard::waiting(p(id), Some(p(lowest)))
    }

    #[test]
    fn a_member_is_joined_whatever_else_is_heard() {
        let mut cs = ColdStart::new(p(1));
        let step = cs.on_round(
            &[wait(2, 2), Heard::member(p(9)), Heard::member(p(7))],
            true,
        );
        assert_eq!(step, ColdStartStep::Join(vec![p(9), p(7)]));
    }

    #[test]
    fn the_lowest_starts_after_two_rounds_and_the_others_wait() {
        let mut low = ColdStart::new(p(1));
        let mut high = ColdStart::new(p(5));
        let heard_by_low = [wait(5, 5), wait(8, 5)];
        let heard_by_high = [wait(1, 1), wait(8, 1)];
        assert_eq!(
            low.on_round(&heard_by_low, true),
            ColdStartStep::Wait { probe: vec![] }
        );
        assert_eq!(
            high.on_round(&heard_by_high, true),
            ColdStartStep::Wait { probe: vec![] }
        );
        assert_eq!(low.lowest(), Some(&p(1)));
        assert_eq!(high.lowest(), Some(&p(1)));
        assert_eq!(low.on_round(&heard_by_low, true), ColdStartStep::Start);
        assert_eq!(
            high.on_round(&heard_by_high, true),
            ColdStartStep::Wait { probe: vec![] }
        );
    }

    #[test]
    fn hearing_nothing_never_starts_a_ring() {
        let mut cs = ColdStart::new(p(1));
        for _ in 0..10 {
            assert_eq!(
                cs.on_round(&[], true),
                ColdStartStep::Wait { probe: vec![] }
            );
        }
        // Our own probe echoed back (our address in the list) is not a candidate either.
        assert_eq!(
            cs.on_round(&[wait(1, 1)], true),
            ColdStartStep::Wait { probe: vec![] }
        );
    }

    #[test]
    fn a_lower_node_heard_of_defers_us_and_is_probed() {
        // We (3) hear only 7, which heard from 2: 2 is lower than us, so we wait and probe 2.
        let mut cs = ColdStart::new(p(3));
        for _ in 0..3 {
            assert_eq!(
                cs.on_round(&[wait(7, 2)], true),
                ColdStartStep::Wait { probe: vec![p(2)] }
            );
        }
        // We pass on only what we heard directly: 3 itself, not the hearsay 2.
        assert_eq!(cs.lowest(), Some(&p(3)));
    }

    #[test]
    fn a_lower_node_that_stops_answering_is_forgotten() {
        let mut cs = ColdStart::new(p(3));
        assert_eq!(
            cs.on_round(&[wait(1, 1), wait(7, 1)], true),
            ColdStartStep::Wait { probe: vec![] }
        );
        // 1 died: 7 no longer hears it either, so 3 is now the lowest known.
        assert_eq!(
            cs.on_round(&[wait(7, 3)], true),
            ColdStartStep::Wait { probe: vec![] }
        );
        assert_eq!(cs.on_round(&[wait(7, 3)], true), ColdStartStep::Start);
    }

    #[test]
    fn confirmation_restarts_when_a_lower_node_appears() {
        let mut cs = ColdStart::new(p(3));
        assert_eq!(
            cs.on_round(&[wait(7, 3)], true),
            ColdStartStep::Wait { probe: vec![] }
        );
        // A lower node came up between our rounds: we defer, and counting starts over.
        assert_eq!(
            cs.on_round(&[wait(7, 3), wait(2, 2)], true),
            ColdStartStep::Wait { probe: vec![] }
        );
        assert_eq!(
            cs.on_round(&[wait(7, 3)], true),
            ColdStartStep::Wait { probe: vec![] }
        );
        assert_eq!(cs.on_round(&[wait(7, 3)], true), ColdStartStep::Start);
    }

    #[test]
    fn joining_nodes_are_neither_candidates_nor_entry_points() {
        let mut cs = ColdStart::new(p(3));
        let joining = Heard {
            peer: p(1),
            standing: Standing::Joining,
            lowest: None,
            eligible: true,
        };
        for _ in 0..3 {
            assert_eq!(
                cs.on_round(std::slice::from_ref(&joining), true),
                ColdStartStep::Wait { probe: vec![] }
            );
        }
        assert_eq!(
            cs.on_round(&[joining.clone(), wait(4, 3)], true),
            ColdStartStep::Wait { probe: vec![] }
        );
        assert_eq!(
            cs.on_round(&[joining, wait(4, 3)], true),
            ColdStartStep::Start
        );
    }

    #[test]
    fn equal_ids_are_ordered_by_address() {
        // With a tiny hash size two addresses can share an id; the order must still be total.
        let space = IdSpace::new(1).expect("space");
        let a = Peer::new(space.mask(Id::from_u64(1)), "a:1");
        let b = Peer::new(space.mask(Id::from_u64(1)), "b:1");
        let mut ca = ColdStart::new(a.clone());
        let mut cb = ColdStart::new(b.clone());
        let ha = [Heard::waiting(b.clone(), Some(b.clone()))];
        let hb = [Heard::waiting(a.clone(), Some(a.clone()))];
        ca.on_round(&ha, true);
        cb.on_round(&hb, true);
        assert_eq!(ca.on_round(&ha, true), ColdStartStep::Start);
        assert_eq!(
            cb.on_round(&hb, true),
            ColdStartStep::Wait { probe: vec![] }
        );
    }

    #[test]
    fn a_node_no_list_names_never_starts_and_never_blocks_a_listed_one() {
        // 1 is off every list: it waits to join even when it is the lowest...
        let mut unlisted = ColdStart::new(p(1));
        for _ in 0..4 {
            assert_eq!(
                unlisted.on_round(&[wait(5, 5)], false),
                ColdStartStep::Wait { probe: vec![] }
            );
        }
        assert_eq!(unlisted.lowest(), Some(&p(5)));
        // ...and the listed 5 does not defer to it: 5 starts, and 1 then joins 5.
        let mut listed = ColdStart::new(p(5));
        let heard = [Heard::waiting_unlisted(p(1), Some(p(5)))];
        assert_eq!(
            listed.on_round(&heard, true),
            ColdStartStep::Wait { probe: vec![] }
        );
        assert_eq!(listed.on_round(&heard, true), ColdStartStep::Start);
        assert_eq!(
            unlisted.on_round(&[Heard::member(p(5))], false),
            ColdStartStep::Join(vec![p(5)])
        );
    }
}
