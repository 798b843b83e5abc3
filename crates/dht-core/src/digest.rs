//! Bucket digests for anti-entropy (docs/protocol.md, "Anti-entropy"): how a ring interval is
//! cut into buckets and how a bucket's entries are summed into 64 bits, so two replicas can
//! find the parts of a range where they differ by exchanging one number per bucket.
//!
//! Both sides compute the buckets from the request alone, `(from, to, max)`: the interval is
//! cut into sub-intervals of equal width 2^shift counted from `from`, with `shift` the
//! smallest for which at most `max` buckets are needed (`max` rounded down to a power of two,
//! so an interval longer than `max` points has between `max/2 + 1` and `max` buckets). Widths
//! that are powers of two keep the arithmetic to shifts on 160-bit ids; counting from `from`
//! rather than from 0 means no interval ever starts or ends inside a bucket, so nothing is
//! split or wrapped at the edges.
//!
//! A bucket's digest is the wrapping sum of one 64-bit hash per entry (the first 8 bytes of
//! SHA-1 over the key, the version and the tombstone flag): order-independent, so each side
//! sums its entries in whatever order its store returns them, and 0 for an empty bucket.

use sha1::{Digest, Sha1};

use crate::interval::between_right;
use crate::{Id, IdSpace};

/// The bucket count asked for when a request leaves it at 0.
pub const DEFAULT_BUCKETS: u32 = 2048;
/// The most buckets one request may ask for (a reply of 512 KiB of digests).
pub const MAX_BUCKETS: u32 = 1 << 16;

/// The buckets of a ring interval `(from, to]` (the whole ring when `from == to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buckets {
    space: IdSpace,
    from: Id,
    to: Id,
    /// Offset of `to` counted from `from + 1`: the interval holds `last + 1` points.
    last: Id,
    /// Each bucket spans 2^shift points (the last one possibly fewer).
    shift: u32,
    count: usize,
}

impl Buckets {
    /// Cuts `(from, to]` into at most `max` buckets (`max` rounded down to a power of two and
    /// capped at [`MAX_BUCKETS`]; 0 means [`DEFAULT_BUCKETS`]).
    pub fn new(space: IdSpace, from: Id, to: Id, max: u32) -> Buckets {
        let max = match max {
            0 => DEFAULT_BUCKETS,
            m => m.min(MAX_BUCKETS),
        };
        let log2_max = 31 - max.leading_zeros();
        let last = space.distance(space.add(from, Id::from_u64(1)), to);
        let shift = last.bit_len().saturating_sub(log2_max);
        let count = last.shr(shift).low_u64() as usize + 1;
        Buckets {
            space,
            from,
            to,
            last,
            shift,
            count,
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The interval, as given.
    pub fn range(&self) -> (Id, Id) {
        (self.from, self.to)
    }

    /// Whether `id` lies in the interval.
    pub fn contains(&self, id: Id) -> bool {
        between_right(id, self.from, self.to)
    }

    /// The bucket holding `id`, or `None` when `id` is outside the interval.
    pub fn index(&self, id: Id) -> Option<usize> {
        if !self.contains(id) {
            return None;
        }
        let offset = self
            .space
            .distance(self.space.add(self.from, Id::from_u64(1)), id);
        Some(offset.shr(self.shift).low_u64() as usize)
    }

    /// Bucket `i`'s ring interval `(a, b]`, for a `FetchRange` or a scan. Consecutive buckets
    /// meet: bucket 0 starts at `from`, the last one ends at `to`.
    pub fn interval(&self, i: usize) -> (Id, Id) {
        self.span(i, i)
    }

    /// The interval covering buckets `first..=last` (one transfer for a run of buckets).
    pub fn span(&self, first: usize, last: usize) -> (Id, Id) {
        debug_assert!(first <= last && last < self.count);
        let a = self
            .space
            .add(self.from, Id::from_u64(first as u64).shl(self.shift));
        let b = if last + 1 >= self.count {
            self.to
        } else {
            self.space
                .add(self.from, Id::from_u64(last as u64 + 1).shl(self.shift))
        };
        (a, b)
    }

    /// Width of a full bucket, as a power of two: for logs and tests.
    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// Points in the interval minus one (the offset of `to` from `from + 1`).
    pub fn last_offset(&self) -> Id {
        self.last
    }
}

/// One entry's contribution to its bucket's digest: the first 8 bytes of SHA-1 over the key's
/// length and bytes, the version (hlc, node) and whether it is a tombstone. The length prefix
/// keeps a key from running into the version bytes.
pub fn entry_digest(key: &[u8], hlc: u64, node: u64, deleted: bool) -> u64 {
    let mut h = Sha1::new();
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(hlc.to_be_bytes());
    h.update(node.to_be_bytes());
    h.update([deleted as u8]);
    let out: [u8; 20] = h.finalize().into();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    u64::from_be_bytes(first)
}

/// The digests of one interval's buckets, summed entry by entry in any order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digests {
    buckets: Buckets,
    sums: Vec<u64>,
    entries: u64,
}

impl Digests {
    pub fn new(buckets: Buckets) -> Digests {
        Digests {
            sums: vec![0; buckets.count()],
            buckets,
            entries: 0,
        }
    }

    /// Adds one entry with id `id` and digest `digest` (see [`entry_digest`]); an id outside
    /// the interval is ignored and reported as `false`.
    pub fn add(&mut self, id: Id, digest: u64) -> bool {
        match self.buckets.index(id) {
            Some(i) => {
                self.sums[i] = self.sums[i].wrapping_add(digest);
                self.entries += 1;
                true
            }
            None => false,
        }
    }

    pub fn buckets(&self) -> &Buckets {
        &self.buckets
    }

    pub fn sums(&self) -> &[u64] {
        &self.sums
    }

    /// Entries added.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    pub fn into_sums(self) -> Vec<u64> {
        self.sums
    }

    /// The buckets whose digests differ from `theirs`, or `None` when `theirs` has another
    /// length (the other side cut the interval differently: it runs other rules).
    pub fn differing(&self, theirs: &[u64]) -> Option<Vec<usize>> {
        if theirs.len() != self.sums.len() {
            return None;
        }
        Some(
            self.sums
                .iter()
                .zip(theirs)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, _)| i)
                .collect(),
        )
    }
}

/// Groups sorted bucket indices into runs of consecutive buckets, each at most `max_len`
/// long, as inclusive `(first, last)` pairs: one transfer per run instead of one per bucket
/// (a joining node, whose buckets all differ, pulls its range in a few streams).
pub fn runs(indices: &[usize], max_len: usize) -> Vec<(usize, usize)> {
    let max_len = max_len.max(1);
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &i in indices {
        match out.last_mut() {
            Some((first, last)) if *last + 1 == i && i - *first < max_len => *last = i,
            _ => out.push((i, i)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small(bits: u32, v: u64) -> Id {
        Id::from_u64(v & ((1u64 << bits) - 1))
    }

    #[test]
    fn whole_ring_of_160_bits_has_the_asked_count() {
        let s = IdSpace::default();
        let from = s.hash(b"a node");
        let b = Buckets::new(s, from, from, 2048);
        assert_eq!(b.count(), 2048);
        assert_eq!(b.shift(), 160 - 11);
        assert_eq!(b.interval(0).0, from);
        assert_eq!(b.interval(2047).1, from);
        assert_eq!(b.index(from), Some(2047));
        assert_eq!(b.index(s.add(from, Id::from_u64(1))), Some(0));
    }

    #[test]
    fn short_intervals_get_one_point_per_bucket() {
        let s = IdSpace::new(16).unwrap();
        let b = Buckets::new(s, Id::from_u64(10), Id::from_u64(15), 2048);
        assert_eq!(b.count(), 5);
        assert_eq!(b.interval(0), (Id::from_u64(10), Id::from_u64(11)));
        assert_eq!(b.interval(4), (Id::from_u64(14), Id::from_u64(15)));
        assert_eq!(b.index(Id::from_u64(10)), None);
        assert_eq!(b.index(Id::from_u64(13)), Some(2));
        assert_eq!(b.span(1, 3), (Id::from_u64(11), Id::from_u64(14)));
    }

    #[test]
    fn a_request_for_zero_or_too_many_buckets_gets_the_default_or_the_cap() {
        let s = IdSpace::default();
        let z = Id::ZERO;
        assert_eq!(Buckets::new(s, z, z, 0).count(), DEFAULT_BUCKETS as usize);
        assert_eq!(
            Buckets::new(s, z, z, u32::MAX).count(),
            MAX_BUCKETS as usize
        );
        // Rounded down to a power of two.
        assert_eq!(Buckets::new(s, z, z, 3000).count(), 2048);
    }

    #[test]
    fn digest_depends_on_key_version_and_tombstone() {
        let d = entry_digest(b"k", 5, 7, false);
        assert_ne!(d, entry_digest(b"k", 6, 7, false));
        assert_ne!(d, entry_digest(b"k", 5, 8, false));
        assert_ne!(d, entry_digest(b"k", 5, 7, true));
        assert_ne!(d, entry_digest(b"j", 5, 7, false));
        assert_eq!(d, entry_digest(b"k", 5, 7, false));
    }

    #[test]
    fn runs_merge_neighbours_up_to_a_length() {
        assert_eq!(runs(&[], 4), vec![]);
        assert_eq!(runs(&[1, 2, 3, 5, 7, 8], 4), vec![(1, 3), (5, 5), (7, 8)]);
        assert_eq!(runs(&[0, 1, 2, 3, 4], 2), vec![(0, 1), (2, 3), (4, 4)]);
    }

    proptest! {
        /// On small circles, by brute force: the buckets partition (from, to] exactly, each id
        /// lies in the bucket `index` names, and ids outside have no bucket.
        #[test]
        fn buckets_partition_the_interval(bits in 1u32..=10, from in any::<u64>(), to in any::<u64>(), max in 0u32..64) {
            let s = IdSpace::new(bits).unwrap();
            let (from, to) = (small(bits, from), small(bits, to));
            let b = Buckets::new(s, from, to, max);
            for x in 0..(1u64 << bits) {
                let x = Id::from_u64(x);
                let holders: Vec<usize> = (0..b.count())
                    .filter(|&i| { let (a, e) = b.interval(i); between_right(x, a, e) })
                    .collect();
                if between_right(x, from, to) {
                    prop_assert_eq!(holders.clone(), vec![b.index(x).unwrap()], "id {:?}", x);
                } else {
                    prop_assert!(holders.is_empty());
                    prop_assert_eq!(b.index(x), None);
                }
            }
        }

        /// The count is as documented: every point its own bucket when the interval is no
        /// longer than the power of two ≤ max, otherwise between half of that and all of it.
        #[test]
        fn bucket_count_follows_the_request(bits in 1u32..=160, from in any::<[u8; 20]>(), to in any::<[u8; 20]>(), max in 1u32..=70_000) {
            let s = IdSpace::new(bits).unwrap();
            let (from, to) = (s.mask(Id::from_be_bytes(from)), s.mask(Id::from_be_bytes(to)));
            let b = Buckets::new(s, from, to, max);
            let pow = 1usize << (31 - max.min(MAX_BUCKETS).leading_zeros());
            prop_assert!(b.count() >= 1 && b.count() <= pow);
            if b.shift() > 0 {
                prop_assert!(b.count() > pow / 2);
            }
            // The buckets are contiguous from `from` to `to`.
            prop_assert_eq!(b.interval(0).0, from);
            prop_assert_eq!(b.interval(b.count() - 1).1, to);
            let mid = b.count() / 2;
            if mid > 0 {
                prop_assert_eq!(b.interval(mid - 1).1, b.interval(mid).0);
            }
        }

        /// On the full 160-bit circle: any id in the interval lies in the interval of its
        /// bucket, and both sides of a request compute the same buckets.
        #[test]
        fn index_and_interval_agree_at_full_width(from in any::<[u8; 20]>(), to in any::<[u8; 20]>(), x in any::<[u8; 20]>(), max in 0u32..5000) {
            let s = IdSpace::default();
            let (from, to, x) = (Id::from_be_bytes(from), Id::from_be_bytes(to), Id::from_be_bytes(x));
            let b = Buckets::new(s, from, to, max);
            prop_assert_eq!(b, Buckets::new(s, from, to, max));
            match b.index(x) {
                Some(i) => {
                    prop_assert!(between_right(x, from, to));
                    let (a, e) = b.interval(i);
                    prop_assert!(between_right(x, a, e));
                    if i + 1 < b.count() {
                        let (a2, e2) = b.interval(i + 1);
                        prop_assert!(!between_right(x, a2, e2));
                    }
                }
                None => prop_assert!(!between_right(x, from, to)),
            }
        }

        /// The digest of a bucket does not depend on the order its entries are added in, and
        /// one changed version changes it.
        #[test]
        fn digests_are_order_independent(keys in proptest::collection::btree_set(any::<u32>(), 1..60), seed in any::<u64>()) {
            let s = IdSpace::default();
            let entries: Vec<(Id, Vec<u8>, u64)> = keys.iter().map(|k| {
                let key = k.to_be_bytes().to_vec();
                (s.hash(&key), key, u64::from(*k) ^ seed)
            }).collect();
            let b = Buckets::new(s, Id::ZERO, Id::ZERO, 64);
            let sum = |order: &mut dyn Iterator<Item = &(Id, Vec<u8>, u64)>| {
                let mut d = Digests::new(b);
                for (id, key, v) in order {
                    prop_assert!(d.add(*id, entry_digest(key, *v, 1, false)));
                }
                Ok(d)
            };
            let forward = sum(&mut entries.iter())?;
            let backward = sum(&mut entries.iter().rev())?;
            prop_assert_eq!(&forward, &backward);
            prop_assert_eq!(forward.differing(backward.sums()), Some(vec![]));
            let mut changed = entries.clone();
            changed[0].2 = changed[0].2.wrapping_add(1);
            let other = sum(&mut changed.iter())?;
            prop_assert_eq!(forward.differing(other.sums()), Some(vec![b.index(entries[0].0).unwrap()]));
        }

        #[test]
        fn shifts_match_u64_arithmetic(v in any::<u64>(), n in 0u32..64) {
            prop_assert_eq!(Id::from_u64(v).shr(n), Id::from_u64(v >> n));
            prop_assert_eq!(Id::from_u64(v).shl(n).shr(n), Id::from_u64(v));
            prop_assert_eq!(Id::from_u64(v).bit_len(), 64 - v.leading_zeros());
        }
    }
}
