//! The successor list: the next `r` members clockwise.
//!
//! Zave's invariant OrderedSuccessorLists needs every list strictly increasing clockwise from
//! its owner with no duplicates and never the owner itself. [`SuccessorList::rebuild`] is the
//! only way a list changes wholesale, and it enforces all three, plus the small-ring rule of
//! docs/protocol.md: members known dead are filtered out of any list copied from a peer.

use crate::{DeadSet, Id, IdSpace, Peer};

#[derive(Clone, Debug, Default)]
pub struct SuccessorList {
    entries: Vec<Peer>,
    cap: usize,
}

impl SuccessorList {
    pub fn new(cap: usize) -> SuccessorList {
        SuccessorList {
            entries: Vec::with_capacity(cap),
            cap,
        }
    }

    pub fn as_slice(&self) -> &[Peer] {
        &self.entries
    }

    pub fn first(&self) -> Option<&Peer> {
        self.entries.first()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn contains(&self, id: Id) -> bool {
        self.entries.iter().any(|p| p.id == id)
    }

    /// Drops a member; returns whether it was present.
    pub fn remove(&mut self, id: Id) -> bool {
        let before = self.entries.len();
        self.entries.retain(|p| p.id != id);
        before != self.entries.len()
    }

    /// Merges `more` into the list: the union, in clockwise order from `me`, without `me`,
    /// duplicates or members known dead, truncated to the capacity. Ring unification uses it to
    /// take in the members another ring lists after our id.
    pub fn merge(&mut self, space: IdSpace, me: Id, more: &[Peer], dead: &DeadSet) {
        let mut all: Vec<Peer> = self.entries.drain(..).chain(more.iter().cloned()).collect();
        all.retain(|p| p.id != me && !dead.contains(p.id));
        all.sort_by_key(|p| space.distance(me, p.id));
        all.dedup_by_key(|p| p.id);
        all.truncate(self.cap);
        self.entries = all;
    }

    /// Sets the list to `head` followed by `tail` (normally the head's own list), keeping only
    /// entries that are strictly further clockwise from `me` than the one before, that are not
    /// `me`, and that are not known dead; truncated to the capacity.
    pub fn rebuild(&mut self, space: IdSpace, me: Id, head: &Peer, tail: &[Peer], dead: &DeadSet) {
        self.entries.clear();
        let mut last = Id::ZERO;
        for p in std::iter::once(head).chain(tail.iter()) {
            if self.entries.len() == self.cap {
                break;
            }
            if p.id == me || dead.contains(p.id) {
                continue;
            }
            let d = space.distance(me, p.id);
            if d <= last {
                // Out of order, a duplicate, or wrapped past `me`: every member after it in a
                // well-formed list is already in ours.
                continue;
            }
            last = d;
            self.entries.push(p.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: u64) -> Peer {
        Peer::new(Id::from_u64(v), format!("n{v}"))
    }

    fn ids(l: &SuccessorList) -> Vec<u64> {
        l.as_slice().iter().map(|p| p.id.low_u64()).collect()
    }

    #[test]
    fn rebuild_drops_self_duplicates_and_wraparound() {
        let s = IdSpace::new(8).unwrap();
        let mut l = SuccessorList::new(4);
        // A 3-node ring {10, 20, 30}: node 10 copies 20's list [30, 10].
        l.rebuild(
            s,
            Id::from_u64(10),
            &p(20),
            &[p(30), p(10)],
            &DeadSet::default(),
        );
        assert_eq!(ids(&l), vec![20, 30]);
        // Duplicates and entries out of clockwise order are dropped.
        l.rebuild(
            s,
            Id::from_u64(10),
            &p(20),
            &[p(20), p(30), p(25), p(5)],
            &DeadSet::default(),
        );
        assert_eq!(ids(&l), vec![20, 30, 5]);
    }

    #[test]
    fn rebuild_filters_known_dead_members() {
        // docs/protocol.md small-ring rule: a dead member must not circulate through copied lists.
        let s = IdSpace::new(8).unwrap();
        let mut dead = DeadSet::default();
        dead.insert(Id::from_u64(30), 0);
        let mut l = SuccessorList::new(4);
        l.rebuild(s, Id::from_u64(10), &p(20), &[p(30), p(10)], &dead);
        assert_eq!(ids(&l), vec![20]);
    }

    #[test]
    fn rebuild_truncates_to_capacity() {
        let s = IdSpace::new(8).unwrap();
        let mut l = SuccessorList::new(2);
        l.rebuild(
            s,
            Id::from_u64(0),
            &p(1),
            &[p(2), p(3)],
            &DeadSet::default(),
        );
        assert_eq!(ids(&l), vec![1, 2]);
    }
}
