//! Rectify, Zave's replacement for Chord's notify: "n' may be your predecessor".

use crate::interval::between_open;
use crate::{Id, NodeState, Peer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rectify {
    /// n' is now the predecessor.
    Adopted,
    /// The current predecessor stays.
    Kept,
    /// n' is not between, but the current predecessor must be pinged: if it is dead, call
    /// [`NodeState::rectify_after_check`].
    CheckPredecessor(Peer),
}

impl NodeState {
    /// Whether [`NodeState::rectify`] would adopt `n` at once, without changing anything. A
    /// driver uses it to take its ownership lock only when the range is about to shrink.
    pub fn rectify_would_adopt(&self, n: &Peer) -> bool {
        n.id != self.me.id
            && match &self.pred {
                None => true,
                Some(p) => p.id != n.id && between_open(n.id, p.id, self.me.id),
            }
    }

    /// The start of the range this node answers for (its last adopted predecessor), if any.
    pub fn range_start(&self) -> Option<Id> {
        self.range_start
    }

    /// Adopts `n` if there is no predecessor or `n` lies in (pred, me); otherwise asks the
    /// driver to check whether the predecessor still lives.
    pub fn rectify(&mut self, n: &Peer) -> Rectify {
        if n.id == self.me.id {
            return Rectify::Kept;
        }
        self.on_peer_alive(n.id);
        match &self.pred {
            None => self.adopt(n),
            Some(p) if p.id == n.id => Rectify::Kept,
            Some(p) if between_open(n.id, p.id, self.me.id) => self.adopt(n),
            Some(p) => Rectify::CheckPredecessor(p.clone()),
        }
    }

    /// Adopts `n` as predecessor and records the keys that thereby move to it: (start, n] of
    /// our old range (everything but (n, me] if we were alone), or nothing if the range did
    /// not shrink (the old predecessor had died and `n` precedes it).
    fn adopt(&mut self, n: &Peer) -> Rectify {
        let me = self.me.id;
        self.given_up = if self.is_alone() {
            Some((me, n.id))
        } else {
            self.range_start
                .filter(|&s| between_open(n.id, s, me))
                .map(|s| (s, n.id))
        };
        self.set_predecessor(n.clone());
        Rectify::Adopted
    }

    /// The ring interval (from, to] whose keys the last adoption moved to the new
    /// predecessor, once: the driver hands those keys over (docs/protocol.md, key movement).
    pub fn take_given_up(&mut self) -> Option<(Id, Id)> {
        self.given_up.take()
    }

    /// The predecessor `checked` was pinged on behalf of `n`; adopt `n` if it is dead.
    pub fn rectify_after_check(&mut self, n: &Peer, checked: &Peer, alive: bool) -> Rectify {
        if alive || self.pred.as_ref().map(|p| p.id) != Some(checked.id) {
            return Rectify::Kept;
        }
        self.on_peer_dead(checked);
        self.adopt(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::{ChordConfig, Id, NodeState, Peer, Rectify};

    fn p(v: u64) -> Peer {
        Peer::new(Id::from_u64(v), format!("n{v}"))
    }

    #[test]
    fn adopting_a_predecessor_reports_the_keys_that_move_to_it() {
        // docs/protocol.md, key movement: on join of n between p and s, the keys in (p, n] move to n.
        let cfg = ChordConfig::new(8, 64).unwrap();
        let mut s = NodeState::new(cfg, p(100));
        // A lone node gives up everything but (n, me].
        assert_eq!(s.rectify(&p(40)), Rectify::Adopted);
        assert_eq!(
            s.take_given_up(),
            Some((Id::from_u64(100), Id::from_u64(40)))
        );
        assert_eq!(s.take_given_up(), None);
        // Give it a successor so it is no longer alone, then a joiner between 40 and 100.
        s.join(&p(200), &[]);
        s.rectify(&p(40));
        s.take_given_up();
        assert_eq!(s.rectify(&p(70)), Rectify::Adopted);
        assert_eq!(
            s.take_given_up(),
            Some((Id::from_u64(40), Id::from_u64(70)))
        );
        // Replacing a dead predecessor by one before it widens the range: nothing moves.
        assert_eq!(s.rectify(&p(20)), Rectify::CheckPredecessor(p(70)));
        assert_eq!(
            s.rectify_after_check(&p(20), &p(70), false),
            Rectify::Adopted
        );
        assert_eq!(s.take_given_up(), None);
    }
}
