//! Fix-fingers: refresh one run of fingers per round with a lookup of its start.

use crate::{Id, NodeState, Peer};

impl NodeState {
    /// The next finger to refresh and the id to look up for it (`me + 2^i`).
    pub fn next_finger(&mut self) -> (usize, Id) {
        let bits = self.cfg.space.bits() as usize;
        let i = self.finger_cursor % bits;
        (i, self.cfg.space.finger_start(self.me.id, i as u32))
    }

    /// The lookup for finger `i` found `succ`: set it and the run of fingers that share it,
    /// and move the cursor past them.
    pub fn set_finger(&mut self, i: usize, succ: &Peer) {
        let (space, me) = (self.cfg.space, self.me.id);
        let next = self.fingers.set_run(space, me, i, succ);
        self.finger_cursor = if next >= space.bits() as usize {
            0
        } else {
            next
        };
    }

    /// The lookup for finger `i` failed; try the next finger next round.
    pub fn skip_finger(&mut self, i: usize) {
        self.finger_cursor = (i + 1) % self.cfg.space.bits() as usize;
    }
}
