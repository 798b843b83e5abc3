//! The settings of a simulated run ([`SimConfig`]) and the check that refuses those under which
//! the simulator's timeout shortcut would be wrong.

use dht_core::ChordConfig;

use crate::engine::Time;
use crate::net::NetModel;
use crate::SimError;

/// Everything a run depends on besides its experiment's own arguments.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub chord: ChordConfig,
    pub net: NetModel,
    /// A call without an answer after this long counts as a failure of the callee.
    pub timeout: Time,
    /// Period of stabilize (with the successor-list probe and check-predecessor): one round.
    pub stabilize_every: Time,
    /// Period of fix-fingers (one finger lookup per period).
    pub fix_fingers_every: Time,
    pub seed: u64,
    /// How many of the last events to keep for a violation report (0 = none).
    pub trace: usize,
}

impl SimConfig {
    /// Refuses settings under which the simulator's timeout shortcut would be wrong.
    pub fn validate(&self) -> Result<(), SimError> {
        if 2 * self.net.latency.max() >= self.timeout {
            return Err(SimError::Arg(format!(
                "timeout {} ms must exceed a round trip at the highest latency ({} ms)",
                self.timeout as f64 / 1000.0,
                2.0 * self.net.latency.max() as f64 / 1000.0
            )));
        }
        if self.stabilize_every == 0 || self.fix_fingers_every == 0 {
            return Err(SimError::Arg(
                "stabilize and fix-fingers intervals must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::world::tests::cfg;
    use crate::world::World;

    #[test]
    fn a_timeout_shorter_than_a_round_trip_is_refused() {
        let mut c = cfg(1);
        c.timeout = 30_000;
        assert!(World::new(c).is_err());
    }
}
