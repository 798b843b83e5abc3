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
            None => {
                self.set_predecessor(n.clone());
                Rectify::Adopted
            }
            Some(p) if p.id == n.id => Rectify::Kept,
            Some(p) if between_open(n.id, p.id, self.me.id) => {
                self.set_predecessor(n.clone());
                Rectify::Adopted
            }
            Some(p) => Rectify::CheckPredecessor(p.clone()),
        }
    }

    /// The predecessor `checked` was pinged on behalf of `n`; adopt `n` if it is dead.
    pub fn rectify_after_check(&mut self, n: &Peer, checked: &Peer, alive: bool) -> Rectify {
        if alive || self.pred.as_ref().map(|p| p.id) != Some(checked.id) {
            return Rectify::Kept;
        }
        self.on_peer_dead(checked.id);
        self.set_predecessor(n.clone());
        Rectify::Adopted
    }
}
