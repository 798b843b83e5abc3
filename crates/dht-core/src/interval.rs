//! Interval tests on the identifier circle.
//!
//! Chord's correctness rests on these four lines, so they are property-tested against a
//! brute-force walk around small circles. With `a == b` an open interval is the whole circle
//! except `a`, and a half-open one the whole circle: the conventions that make a lone node its
//! own successor and owner of every key.

use crate::Id;

/// x ∈ (a, b), clockwise.
pub fn between_open(x: Id, a: Id, b: Id) -> bool {
    use std::cmp::Ordering::*;
    match a.cmp(&b) {
        Less => a < x && x < b,
        Greater => x > a || x < b,
        Equal => x != a,
    }
}

/// x ∈ (a, b], clockwise.
pub fn between_right(x: Id, a: Id, b: Id) -> bool {
    use std::cmp::Ordering::*;
    match a.cmp(&b) {
        Less => a < x && x <= b,
        Greater => x > a || x <= b,
        Equal => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Walks clockwise from a+1 towards b on a circle of 2^bits points.
    fn walk(bits: u32, x: u64, a: u64, b: u64, include_b: bool) -> bool {
        let n = 1u64 << bits;
        let mut p = (a + 1) % n;
        loop {
            if p == b {
                return include_b && x == b;
            }
            if p == x {
                return true;
            }
            p = (p + 1) % n;
        }
    }

    proptest! {
        #[test]
        fn open_interval_matches_a_walk(bits in 1u32..8, x in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
            let m = (1u64 << bits) - 1;
            let (x, a, b) = (x & m, a & m, b & m);
            let expected = if a == b { x != a } else { walk(bits, x, a, b, false) };
            prop_assert_eq!(between_open(Id::from_u64(x), Id::from_u64(a), Id::from_u64(b)), expected);
        }

        #[test]
        fn half_open_interval_matches_a_walk(bits in 1u32..8, x in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
            let m = (1u64 << bits) - 1;
            let (x, a, b) = (x & m, a & m, b & m);
            let expected = if a == b { true } else { walk(bits, x, a, b, true) };
            prop_assert_eq!(between_right(Id::from_u64(x), Id::from_u64(a), Id::from_u64(b)), expected);
        }

        #[test]
        fn every_point_has_exactly_one_owner(ids in proptest::collection::btree_set(0u64..256, 1..20), x in 0u64..256) {
            // The half-open arcs (pred, n] of a ring partition the circle.
            let ids: Vec<u64> = ids.into_iter().collect();
            let owners = (0..ids.len())
                .filter(|&i| {
                    let pred = ids[(i + ids.len() - 1) % ids.len()];
                    between_right(Id::from_u64(x), Id::from_u64(pred), Id::from_u64(ids[i]))
                })
                .count();
            prop_assert_eq!(owners, 1);
        }
    }
}
