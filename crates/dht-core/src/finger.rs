//! The finger table: finger i is some member at or after `me + 2^i`.
//!
//! Fingers are only an optimisation (lookups are correct from successors alone), so a stale or
//! missing finger costs hops, never correctness. Consecutive fingers usually name the same
//! member; [`FingerTable::set_run`] fills the whole run from one lookup, so fix-fingers needs
//! about log2 N lookups, not `hash_size`, to refresh the table.

use crate::interval::between_right;
use crate::{Id, IdSpace, Peer};

#[derive(Clone, Debug)]
pub struct FingerTable {
    entries: Vec<Option<Peer>>,
}

impl FingerTable {
    pub fn new(space: IdSpace) -> FingerTable {
        FingerTable {
            entries: vec![None; space.bits() as usize],
        }
    }

    pub fn get(&self, i: usize) -> Option<&Peer> {
        self.entries.get(i).and_then(|e| e.as_ref())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(|e| e.is_none())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.entries.iter().flatten()
    }

    /// Distinct fingers in table order.
    pub fn distinct(&self) -> Vec<Peer> {
        let mut out: Vec<Peer> = Vec::new();
        for p in self.iter() {
            if out.last().map(|l| l.id) != Some(p.id) {
                out.push(p.clone());
            }
        }
        out
    }

    /// Sets finger `i` to `succ`, the member that succeeds its start, and every following
    /// finger whose start also lies in (me, succ]: they have the same successor. Returns the
    /// index of the first finger not set.
    pub fn set_run(&mut self, space: IdSpace, me: Id, i: usize, succ: &Peer) -> usize {
        let mut j = i;
        while j < self.entries.len() {
            let start = space.finger_start(me, j as u32);
            if j > i && !between_right(start, me, succ.id) {
                break;
            }
            self.entries[j] = if succ.id == me {
                None
            } else {
                Some(succ.clone())
            };
            j += 1;
        }
        j
    }

    /// Drops a member from every finger.
    pub fn remove(&mut self, id: Id) {
        for e in &mut self.entries {
            if e.as_ref().is_some_and(|p| p.id == id) {
                *e = None;
            }
        }
    }

    pub fn clear(&mut self) {
        self.entries.iter_mut().for_each(|e| *e = None);
    }

    /// Computes every finger from the full sorted membership: the simulator's fast mode and
    /// the reference in tests. `ring` must be sorted by id and contain `me`.
    pub fn ideal(space: IdSpace, me: Id, ring: &[Peer]) -> FingerTable {
        let mut t = FingerTable::new(space);
        let mut i = 0;
        while i < t.entries.len() {
            let start = space.finger_start(me, i as u32);
            let succ = successor_in(ring, start);
            i = t.set_run(space, me, i, succ);
        }
        t
    }
}

/// The first member of `ring` (sorted by id) at or after `id`, wrapping around.
pub fn successor_in(ring: &[Peer], id: Id) -> &Peer {
    let i = ring.partition_point(|p| p.id < id);
    &ring[i % ring.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ideal_fingers_match_the_chord_paper_example() {
        // Chord §4.2, figure 3(b): m = 3, nodes 0, 1, 3. Node 1's fingers start at 2, 3, 5
        // and are 3, 3, 0.
        let s = IdSpace::new(3).unwrap();
        let ring: Vec<Peer> = [0u64, 1, 3]
            .iter()
            .map(|&v| Peer::new(Id::from_u64(v), format!("n{v}")))
            .collect();
        let t = FingerTable::ideal(s, Id::from_u64(1), &ring);
        let got: Vec<u64> = (0..3).map(|i| t.get(i).unwrap().id.low_u64()).collect();
        assert_eq!(got, vec![3, 3, 0]);
        assert_eq!(t.distinct().len(), 2);
    }
}
