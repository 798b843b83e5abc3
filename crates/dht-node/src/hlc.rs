//! A hybrid logical clock for write versions.
//!
//! Versions must order writes even when wall clocks of LAN machines disagree a little: the
//! clock never goes backwards, advances past any version it has seen, and keeps 16 bits of
//! logical counter below the milliseconds (`dht_store::Version::LOGICAL_BITS`).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use dht_store::Version;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug)]
pub struct Hlc {
    node: u64,
    /// How far ahead of the local clock an observed version may be (`max_clock_skew_ms`):
    /// the node refuses to store such versions, and its clock does not follow them.
    max_ahead_ms: u64,
    /// Last issued hlc value; a plain mutex, held for a few instructions.
    last: Mutex<u64>,
}

impl Hlc {
    pub fn new(node: u64, max_ahead_ms: u64) -> Hlc {
        Hlc {
            node,
            max_ahead_ms,
            last: Mutex::new(0),
        }
    }

    pub fn next(&self) -> Version {
        let physical = now_ms() << Version::LOGICAL_BITS;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *last = last.saturating_add(1).max(physical);
        Version {
            hlc: *last,
            node: self.node,
        }
    }

    /// How far `v` is ahead of the local clock beyond the allowed skew, in milliseconds; 0
    /// when acceptable.
    pub fn excess_ms(&self, v: Version) -> u64 {
        v.physical_ms()
            .saturating_sub(now_ms().saturating_add(self.max_ahead_ms))
    }

    pub fn max_ahead_ms(&self) -> u64 {
        self.max_ahead_ms
    }

    /// Moves the clock past a version seen from elsewhere, unless that version claims a time
    /// further ahead of ours than the allowed skew: a peer with a broken clock (or a hostile
    /// one) must not drag every later write of this node into the future.
    pub fn observe(&self, v: Version) {
        if self.excess_ms(v) > 0 {
            tracing::warn!(
                hlc = v.hlc,
                "ignoring a version far ahead of this node's clock"
            );
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *last = (*last).max(v.hlc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_strictly_increase_and_pass_observed_ones() {
        let c = Hlc::new(7, 24 * 3600 * 1000);
        let a = c.next();
        let b = c.next();
        assert!(b > a);
        let far = Version {
            hlc: b.hlc + (1 << 40),
            node: 1,
        };
        c.observe(far);
        assert!(c.next() > far);
        // A version from the far future is not adopted, and nothing overflows.
        let absurd = Version {
            hlc: u64::MAX,
            node: 1,
        };
        c.observe(absurd);
        assert!(c.next() < absurd);
    }
}
