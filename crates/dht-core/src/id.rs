//! Identifiers on the Chord circle.
//!
//! An [`Id`] is a 160-bit unsigned integer; an [`IdSpace`] fixes how many of those bits are in
//! use (`hash_size`, 1..=160), so the circle has 2^hash_size points. Ids are derived from SHA-1
//! and truncated to the *leading* `hash_size` bits of the digest, which keeps the spread of
//! SHA-1 at every size. All arithmetic is modulo 2^hash_size.

use sha1::{Digest, Sha1};
use std::fmt;

use crate::CoreError;

/// Largest supported identifier width: a whole SHA-1 digest.
pub const MAX_BITS: u32 = 160;

/// A point on the identifier circle, stored as five big-endian 32-bit limbs so that the derived
/// ordering is numeric ordering.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id([u32; 5]);

impl Id {
    pub const ZERO: Id = Id([0; 5]);

    /// From 20 big-endian bytes.
    pub fn from_be_bytes(bytes: [u8; 20]) -> Id {
        let mut limbs = [0u32; 5];
        for (i, limb) in limbs.iter_mut().enumerate() {
            *limb = u32::from_be_bytes([
                bytes[4 * i],
                bytes[4 * i + 1],
                bytes[4 * i + 2],
                bytes[4 * i + 3],
            ]);
        }
        Id(limbs)
    }

    /// From a wire slice, which must be exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Id, CoreError> {
        let arr: [u8; 20] = bytes
            .try_into()
            .map_err(|_| CoreError::IdLength(bytes.len()))?;
        Ok(Id::from_be_bytes(arr))
    }

    pub fn to_be_bytes(self) -> [u8; 20] {
        let mut out = [0u8; 20];
        for (i, limb) in self.0.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// A small id, handy in tests and the simulator.
    pub fn from_u64(v: u64) -> Id {
        Id([0, 0, 0, (v >> 32) as u32, v as u32])
    }

    /// The low 64 bits (lossy for large ids); for plots and tests.
    pub fn low_u64(self) -> u64 {
        ((self.0[3] as u64) << 32) | self.0[4] as u64
    }

    /// The id as an `f64` fraction of a circle of `bits` bits, in [0, 1): for load statistics.
    pub fn fraction(self, bits: u32) -> f64 {
        let mut v = 0f64;
        for limb in self.0 {
            v = v * 4_294_967_296.0 + limb as f64;
        }
        v / 2f64.powi(bits as i32)
    }

    fn wrapping_add(self, other: Id) -> Id {
        let mut out = [0u32; 5];
        let mut carry = 0u64;
        for i in (0..5).rev() {
            let s = self.0[i] as u64 + other.0[i] as u64 + carry;
            out[i] = s as u32;
            carry = s >> 32;
        }
        Id(out)
    }

    fn wrapping_sub(self, other: Id) -> Id {
        let mut out = [0u32; 5];
        let mut borrow = 0i64;
        for i in (0..5).rev() {
            let mut d = self.0[i] as i64 - other.0[i] as i64 - borrow;
            borrow = 0;
            if d < 0 {
                d += 1 << 32;
                borrow = 1;
            }
            out[i] = d as u32;
        }
        Id(out)
    }

    /// Shifted right by `n` bits (bits pushed out are lost).
    pub(crate) fn shr(self, n: u32) -> Id {
        let bytes = self.to_be_bytes();
        let mut v = [0u8; 20];
        let (whole, part) = ((n / 8) as usize, n % 8);
        for i in (0..20).rev() {
            if i < whole {
                break;
            }
            let src = i - whole;
            let mut b = bytes[src] >> part;
            if part > 0 && src > 0 {
                b |= bytes[src - 1] << (8 - part);
            }
            v[i] = b;
        }
        Id::from_be_bytes(v)
    }

    /// Shifted left by `n` bits, dropping what passes the 160th bit; the caller masks to its
    /// space.
    pub(crate) fn shl(self, n: u32) -> Id {
        let mut out = [0u32; 5];
        let (whole, part) = ((n / 32) as usize, n % 32);
        for (i, limb) in out.iter_mut().enumerate() {
            let src = i + whole;
            if src >= 5 {
                break;
            }
            let mut v = self.0[src] << part;
            if part > 0 && src + 1 < 5 {
                v |= self.0[src + 1] >> (32 - part);
            }
            *limb = v;
        }
        Id(out)
    }

    /// The number of significant bits: 0 for zero, 1 for one, 160 for the largest id.
    pub(crate) fn bit_len(self) -> u32 {
        for (i, limb) in self.0.iter().enumerate() {
            if *limb != 0 {
                return 32 * (4 - i as u32) + (32 - limb.leading_zeros());
            }
        }
        0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.to_be_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The leading zeros of a small space carry no information; show the significant tail.
        let s = self.to_string();
        let t = s.trim_start_matches('0');
        write!(f, "#{}", if t.is_empty() { "0" } else { t })
    }
}

/// The circle of 2^bits identifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdSpace {
    bits: u32,
}

impl Default for IdSpace {
    fn default() -> Self {
        IdSpace { bits: MAX_BITS }
    }
}

impl IdSpace {
    pub fn new(bits: u32) -> Result<IdSpace, CoreError> {
        if (1..=MAX_BITS).contains(&bits) {
            Ok(IdSpace { bits })
        } else {
            Err(CoreError::HashSize(bits))
        }
    }

    pub fn bits(self) -> u32 {
        self.bits
    }

    /// The id of arbitrary bytes (a key, or a node's advertised `host:port`).
    pub fn hash(self, data: &[u8]) -> Id {
        let digest: [u8; 20] = Sha1::digest(data).into();
        Id::from_be_bytes(digest).shr(MAX_BITS - self.bits)
    }

    /// Keeps the low `bits` bits: reduction modulo 2^bits.
    pub fn mask(self, id: Id) -> Id {
        if self.bits == MAX_BITS {
            return id;
        }
        let mut limbs = id.0;
        let keep = self.bits;
        for (i, limb) in limbs.iter_mut().enumerate() {
            // Limb i holds bits [128 - 32 i, 160 - 32 i) counted from the least significant.
            let lo = MAX_BITS - 32 * (i as u32 + 1);
            if lo >= keep {
                *limb = 0;
            } else if lo + 32 > keep {
                *limb &= (1u32 << (keep - lo)) - 1;
            }
        }
        Id(limbs)
    }

    /// Whether `id` is a point of this circle.
    pub fn contains(self, id: Id) -> bool {
        self.mask(id) == id
    }

    /// Checks an id received from the network.
    pub fn check(self, id: Id) -> Result<Id, CoreError> {
        if self.contains(id) {
            Ok(id)
        } else {
            Err(CoreError::IdOutOfRange {
                id,
                bits: self.bits,
            })
        }
    }

    pub fn add(self, a: Id, b: Id) -> Id {
        self.mask(a.wrapping_add(b))
    }

    /// Clockwise distance from `from` to `to`.
    pub fn distance(self, from: Id, to: Id) -> Id {
        self.mask(to.wrapping_sub(from))
    }

    /// 2^i, for i < bits.
    pub fn pow2(self, i: u32) -> Id {
        debug_assert!(i < self.bits);
        let mut limbs = [0u32; 5];
        let limb = 4 - (i / 32) as usize;
        limbs[limb] = 1 << (i % 32);
        Id(limbs)
    }

    /// The start of finger `i` of node `n`: n + 2^i.
    pub fn finger_start(self, n: Id, i: u32) -> Id {
        self.add(n, self.pow2(i))
    }

    /// The last point of the circle, 2^bits − 1.
    pub fn max_id(self) -> Id {
        self.mask(Id([u32::MAX; 5]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hash_is_sha1_at_full_width() {
        // SHA-1("abc") = a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d
        let id = IdSpace::default().hash(b"abc");
        assert_eq!(id.to_string(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn hash_keeps_the_leading_bits() {
        let s = IdSpace::new(8).unwrap();
        assert_eq!(s.hash(b"abc"), Id::from_u64(0xa9));
        let s = IdSpace::new(12).unwrap();
        assert_eq!(s.hash(b"abc"), Id::from_u64(0xa99));
    }

    #[test]
    fn invalid_hash_sizes_are_refused() {
        assert!(IdSpace::new(0).is_err());
        assert!(IdSpace::new(161).is_err());
        assert!(IdSpace::new(1).is_ok());
    }

    #[test]
    fn arithmetic_wraps_modulo_the_circle() {
        let s = IdSpace::new(8).unwrap();
        assert_eq!(s.add(Id::from_u64(250), Id::from_u64(10)), Id::from_u64(4));
        assert_eq!(
            s.distance(Id::from_u64(250), Id::from_u64(4)),
            Id::from_u64(10)
        );
        assert_eq!(s.finger_start(Id::from_u64(200), 7), Id::from_u64(72));
        assert_eq!(s.max_id(), Id::from_u64(255));
    }

    proptest! {
        #[test]
        fn bytes_round_trip(b in proptest::array::uniform20(any::<u8>())) {
            prop_assert_eq!(Id::from_be_bytes(b).to_be_bytes(), b);
        }

        #[test]
        fn add_then_distance_is_identity(bits in 1u32..=160, a in any::<[u8; 20]>(), b in any::<[u8; 20]>()) {
            let s = IdSpace::new(bits).unwrap();
            let (a, b) = (s.mask(Id::from_be_bytes(a)), s.mask(Id::from_be_bytes(b)));
            prop_assert_eq!(s.distance(a, s.add(a, b)), b);
            prop_assert!(s.contains(s.hash(&a.to_be_bytes())));
        }

        #[test]
        fn small_spaces_match_u64_arithmetic(bits in 1u32..=63, a in any::<u64>(), b in any::<u64>()) {
            let s = IdSpace::new(bits).unwrap();
            let m = (1u64 << bits) - 1;
            let (a, b) = (a & m, b & m);
            prop_assert_eq!(s.add(Id::from_u64(a), Id::from_u64(b)), Id::from_u64(a.wrapping_add(b) & m));
            prop_assert_eq!(s.distance(Id::from_u64(a), Id::from_u64(b)), Id::from_u64(b.wrapping_sub(a) & m));
        }
    }
}
