//! Quorum decisions (docs/consistency.md, "Quorums"): how many replicas must answer, and
//! whether a request in progress has succeeded, can still succeed, or has failed. Pure
//! counting, so the node, the simulator and the model checker decide alike.

use std::fmt;
use std::str::FromStr;

/// How many of a key's replicas must answer a read or acknowledge a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Quorum {
    One,
    #[default]
    Majority,
    All,
}

impl Quorum {
    /// Replicas needed out of a replica set of `replicas` (at least one).
    pub fn needed(self, replicas: usize) -> usize {
        let n = replicas.max(1);
        match self {
            Quorum::One => 1,
            Quorum::Majority => n / 2 + 1,
            Quorum::All => n,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Quorum::One => "one",
            Quorum::Majority => "majority",
            Quorum::All => "all",
        }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quorum {
    type Err = String;
    fn from_str(s: &str) -> Result<Quorum, String> {
        match s.to_ascii_lowercase().as_str() {
            "one" | "1" => Ok(Quorum::One),
            "majority" | "quorum" => Ok(Quorum::Majority),
            "all" => Ok(Quorum::All),
            other => Err(format!(
                "unknown quorum {other:?}: expected one, majority or all"
            )),
        }
    }
}

/// Where a request stands once some replicas answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    /// Enough replicas succeeded: answer the client.
    Reached,
    /// Not yet decided: wait for more answers.
    Pending,
    /// Too many replicas failed or refused for the quorum to be reached.
    Impossible,
}

/// Counts the answers to one request sent to a replica set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub replicas: usize,
    pub needed: usize,
    pub ok: usize,
    pub failed: usize,
}

impl Count {
    pub fn new(quorum: Quorum, replicas: usize) -> Count {
        Count {
            replicas: replicas.max(1),
            needed: quorum.needed(replicas),
            ok: 0,
            failed: 0,
        }
    }

    pub fn ok(&mut self) -> Tally {
        self.ok += 1;
        self.tally()
    }

    pub fn failed(&mut self) -> Tally {
        self.failed += 1;
        self.tally()
    }

    pub fn tally(&self) -> Tally {
        if self.ok >= self.needed {
            Tally::Reached
        } else if self.replicas.saturating_sub(self.failed) < self.needed {
            Tally::Impossible
        } else {
            Tally::Pending
        }
    }

    /// Answers still outstanding.
    pub fn outstanding(&self) -> usize {
        self.replicas.saturating_sub(self.ok + self.failed)
    }
}

/// Two quorums of one replica set always share a replica when their sizes add up to more than
/// the set: a read quorum then sees at least one replica of every acknowledged write.
pub fn intersects(write: Quorum, read: Quorum, replicas: usize) -> bool {
    write.needed(replicas) + read.needed(replicas) > replicas.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn needed_per_level() {
        assert_eq!(Quorum::Majority.needed(3), 2);
        assert_eq!(Quorum::Majority.needed(5), 3);
        assert_eq!(Quorum::Majority.needed(4), 3);
        assert_eq!(Quorum::Majority.needed(1), 1);
        assert_eq!(Quorum::One.needed(3), 1);
        assert_eq!(Quorum::All.needed(3), 3);
        assert_eq!(Quorum::All.needed(0), 1);
        assert!(intersects(Quorum::Majority, Quorum::Majority, 3));
        assert!(!intersects(Quorum::One, Quorum::Majority, 3));
        assert!(intersects(Quorum::All, Quorum::One, 3));
        assert_eq!("ALL".parse::<Quorum>(), Ok(Quorum::All));
        assert!("two".parse::<Quorum>().is_err());
    }

    proptest! {
        /// Whatever order successes and failures arrive in, the count reaches the quorum
        /// exactly when `needed` replicas succeeded, and gives up exactly when that became
        /// impossible; it never decides both ways.
        #[test]
        fn tally_decides_once_and_correctly(
            n in 1usize..8,
            q in prop_oneof![Just(Quorum::One), Just(Quorum::Majority), Just(Quorum::All)],
            answers in proptest::collection::vec(any::<bool>(), 0..8),
        ) {
            let mut c = Count::new(q, n);
            let mut decided = None;
            for ok in answers.into_iter().take(n) {
                let t = if ok { c.ok() } else { c.failed() };
                match (decided, t) {
                    (None, Tally::Pending) => {}
                    (None, t) => decided = Some(t),
                    (Some(d), _) => prop_assert!(d == c.tally() || d == Tally::Reached || d == Tally::Impossible),
                }
                prop_assert_eq!(t == Tally::Reached, c.ok >= q.needed(n));
                prop_assert_eq!(t == Tally::Impossible, c.ok < q.needed(n) && n - c.failed < q.needed(n));
            }
        }

        /// Majority reads and writes of the same set always overlap.
        #[test]
        fn majorities_intersect(n in 1usize..17) {
            prop_assert!(intersects(Quorum::Majority, Quorum::Majority, n));
        }
    }
}
