//! Members recently seen dead.
//!
//! docs/protocol.md's small-ring rule: in a ring of at most r members every list holds every member,
//! so a dead member copied from list to list would never leave. Remembering deaths for a few
//! stabilize rounds, and filtering copied lists through that memory, breaks the cycle. Time is
//! counted in the node's own stabilize rounds, so the core needs no clock. Direct evidence of
//! life (a reply, a notify) clears an entry at once, so a restarted node can rejoin.

use std::collections::HashMap;

use crate::Id;

#[derive(Clone, Debug, Default)]
pub struct DeadSet {
    since: HashMap<Id, u64>,
}

impl DeadSet {
    pub fn insert(&mut self, id: Id, round: u64) {
        self.since.insert(id, round);
    }

    pub fn remove(&mut self, id: Id) {
        self.since.remove(&id);
    }

    pub fn contains(&self, id: Id) -> bool {
        self.since.contains_key(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = Id> + '_ {
        self.since.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.since.len()
    }

    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }

    pub fn clear(&mut self) {
        self.since.clear();
    }

    /// Forgets deaths older than `ttl` rounds.
    pub fn expire(&mut self, round: u64, ttl: u64) {
        self.since.retain(|_, r| round.saturating_sub(*r) < ttl);
    }
}
