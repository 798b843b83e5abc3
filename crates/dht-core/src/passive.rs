//! The passive list: members this node presumed dead, and its bootstrap addresses, kept and
//! probed with backoff so that a partition that heals is noticed (docs/protocol.md, "Ring
//! unification").
//!
//! Chord forgets a member the moment it stops answering; after a partition each side has
//! forgotten the other and nothing would ever bring them together again. Remembering costs a
//! few entries: the list is bounded ([`ChordConfig::passive_capacity`], the oldest entry makes
//! room), an entry is probed after 1, 2, 4, … stabilize rounds up to
//! [`ChordConfig::rejoin_backoff_max_rounds`], and it is dropped once it has been remembered
//! for [`ChordConfig::rejoin_window_rounds`] or once a probe shows the peer is in this node's
//! ring. Time is the node's stabilize round, like everywhere in the core.
//!
//! [`ChordConfig::passive_capacity`]: crate::ChordConfig
//! [`ChordConfig::rejoin_backoff_max_rounds`]: crate::ChordConfig
//! [`ChordConfig::rejoin_window_rounds`]: crate::ChordConfig

use crate::{Id, Peer};

/// One remembered peer and when to probe it next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassiveEntry {
    pub peer: Peer,
    /// The round it was (last) presumed dead or listed as a bootstrap.
    pub since: u64,
    /// The round of its next probe.
    pub next: u64,
    /// Rounds between the last probe and the next.
    pub backoff: u64,
}

#[derive(Clone, Debug, Default)]
pub struct PassiveList {
    entries: Vec<PassiveEntry>,
}

impl PassiveList {
    /// Remembers `peer` from `round` on, probed first at the next round. A peer already
    /// remembered keeps its schedule (a second failure is no news). When `cap` entries are
    /// held, the one remembered longest makes room.
    pub fn remember(&mut self, peer: Peer, round: u64, cap: usize) {
        if cap == 0 || self.entries.iter().any(|e| e.peer.id == peer.id) {
            return;
        }
        if self.entries.len() >= cap {
            if let Some(oldest) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].since) {
                self.entries.swap_remove(oldest);
            }
        }
        self.entries.push(PassiveEntry {
            peer,
            since: round,
            next: round + 1,
            backoff: 1,
        });
    }

    /// The peers to probe at `round`, each then rescheduled with doubled backoff (at most
    /// `max_backoff`); entries older than `window` rounds are dropped first.
    pub fn due(&mut self, round: u64, window: u64, max_backoff: u64) -> Vec<Peer> {
        self.entries
            .retain(|e| round.saturating_sub(e.since) <= window);
        let mut due = Vec::new();
        for e in &mut self.entries {
            if e.next <= round {
                due.push(e.peer.clone());
                e.backoff = (e.backoff * 2).min(max_backoff.max(1));
                e.next = round + e.backoff;
            }
        }
        due
    }

    /// Drops `id`: it answered and is in this node's ring.
    pub fn forget(&mut self, id: Id) {
        self.entries.retain(|e| e.peer.id != id);
    }

    pub fn contains(&self, id: Id) -> bool {
        self.entries.iter().any(|e| e.peer.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PassiveEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: u64) -> Peer {
        Peer::new(Id::from_u64(v), format!("n{v}"))
    }

    #[test]
    fn probes_back_off_exponentially_up_to_the_cap() {
        let mut l = PassiveList::default();
        l.remember(p(1), 10, 8);
        let probed: Vec<u64> = (10..60)
            .filter(|&r| !l.due(r, 1000, 8).is_empty())
            .collect();
        assert_eq!(probed, vec![11, 13, 17, 25, 33, 41, 49, 57]);
    }

    #[test]
    fn entries_expire_after_the_window_and_a_second_failure_keeps_the_schedule() {
        let mut l = PassiveList::default();
        l.remember(p(1), 0, 8);
        assert_eq!(l.due(1, 5, 4), vec![p(1)]);
        l.remember(p(1), 3, 8);
        assert_eq!(l.iter().next().unwrap().since, 0);
        assert!(l.due(6, 5, 4).is_empty());
        assert!(l.is_empty());
    }

    #[test]
    fn the_list_is_bounded_and_the_oldest_entry_makes_room() {
        let mut l = PassiveList::default();
        for (i, r) in [(1, 5), (2, 3), (3, 7)] {
            l.remember(p(i), r, 2);
        }
        let ids: Vec<u64> = l.iter().map(|e| e.peer.id.low_u64()).collect();
        assert_eq!(ids, vec![1, 3]);
        l.forget(Id::from_u64(1));
        assert!(!l.contains(Id::from_u64(1)) && l.contains(Id::from_u64(3)));
    }
}
