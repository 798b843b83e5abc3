//! Read-only views of the world: the live members (the truth lookups are judged against), the
//! nodes' states, and Zave's invariants over the live members.

use dht_core::invariants::{check_ideal, check_ring, RingShape, Violation};
use dht_core::{Id, NodeState, Peer};

use crate::world::{Ix, World};

impl World {
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Live members in id order.
    pub fn ring(&self) -> Vec<Peer> {
        self.live
            .values()
            .map(|&i| self.nodes[i as usize].state.me().clone())
            .collect()
    }

    pub fn state(&self, ix: Ix) -> &NodeState {
        &self.nodes[ix as usize].state
    }

    pub fn ix_of(&self, id: Id) -> Option<Ix> {
        self.by_id.get(&id).copied()
    }

    /// Live members' ids in id order.
    pub fn member_ids(&self) -> Vec<Id> {
        self.live.keys().copied().collect()
    }

    pub fn is_alive(&self, ix: Ix) -> bool {
        self.nodes[ix as usize].alive
    }

    /// The live member that owns `key` (its successor), if any.
    pub fn true_owner(&self, key: Id) -> Option<Ix> {
        self.live
            .range(key..)
            .next()
            .or_else(|| self.live.iter().next())
            .map(|(_, &ix)| ix)
    }

    /// Zave's invariants over the live members.
    pub fn check(&self) -> Result<RingShape, Violation> {
        let live: Vec<&NodeState> = self
            .live
            .values()
            .map(|&i| &self.nodes[i as usize].state)
            .collect();
        check_ring(&live)
    }

    /// Whether the ring is ideal (successors, lists, predecessors; and fingers if asked).
    pub fn is_ideal(&self, fingers: bool) -> bool {
        let live: Vec<&NodeState> = self
            .live
            .values()
            .map(|&i| &self.nodes[i as usize].state)
            .collect();
        check_ideal(&live, fingers).is_ok()
    }

    /// The last events, for a violation report.
    pub fn trace(&self) -> String {
        self.trace.render()
    }
}
