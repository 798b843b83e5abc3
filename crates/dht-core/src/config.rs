//! Parameters of the Chord rules.

use crate::{CoreError, IdSpace};

/// The rules' tunables. Intervals and timeouts are not here: they are the driver's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChordConfig {
    pub space: IdSpace,
    /// r: successor-list length.
    pub successors: usize,
    /// How many stabilize rounds a death is remembered (docs/protocol.md small-ring rule).
    pub dead_rounds: u64,
    /// How many preceding candidates a routing step returns, so the driver can fall back.
    pub step_fanout: usize,
    /// Most members remembered in the passive list (docs/protocol.md, "Ring unification").
    pub passive_capacity: usize,
    /// How many rounds a passive-list entry is probed before it is forgotten.
    pub rejoin_window_rounds: u64,
    /// The longest wait, in rounds, between two probes of one passive-list entry.
    pub rejoin_backoff_max_rounds: u64,
}

impl ChordConfig {
    /// Zave's default r = max(4, 2·⌈log2 max_nodes⌉), capped at 64 (enough for a 50% mass
    /// failure of 2^32 nodes; beyond that the lists only cost stabilize bandwidth).
    pub fn default_successors(max_nodes: u64) -> usize {
        let log = 64 - max_nodes.max(2).saturating_sub(1).leading_zeros() as usize;
        (2 * log).clamp(4, 64)
    }

    pub fn new(hash_size: u32, max_nodes: u64) -> Result<ChordConfig, CoreError> {
        Ok(ChordConfig {
            space: IdSpace::new(hash_size)?,
            successors: Self::default_successors(max_nodes),
            dead_rounds: 8,
            step_fanout: 3,
            passive_capacity: 32,
            rejoin_window_rounds: 86_400,
            rejoin_backoff_max_rounds: 16,
        })
    }

    pub fn with_successors(mut self, r: usize) -> Result<ChordConfig, CoreError> {
        if !(1..=256).contains(&r) {
            return Err(CoreError::SuccessorListLength(r));
        }
        self.successors = r;
        Ok(self)
    }
}

impl Default for ChordConfig {
    fn default() -> Self {
        ChordConfig::new(160, 1024).expect("160 bits is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_successor_list_length_follows_chord_md() {
        assert_eq!(ChordConfig::default_successors(1), 4);
        assert_eq!(ChordConfig::default_successors(4), 4);
        assert_eq!(ChordConfig::default_successors(8), 6);
        assert_eq!(ChordConfig::default_successors(1000), 20);
        assert_eq!(ChordConfig::default_successors(1024), 20);
        assert_eq!(ChordConfig::default_successors(1025), 22);
        assert_eq!(ChordConfig::default_successors(100_000), 34);
    }
}
