//! The data model (docs/consistency.md).

use dht_core::Id;

/// Orders writes: hybrid logical clock first, then the writer's node id as a tie-break, so two
/// writes never compare equal unless they are the same write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub hlc: u64,
    pub node: u64,
}

impl Version {
    /// Bits of `hlc` below the physical milliseconds: a logical counter for writes within one
    /// millisecond.
    pub const LOGICAL_BITS: u32 = 16;

    /// The wall-clock part of the version, in milliseconds since the Unix epoch.
    pub fn physical_ms(&self) -> u64 {
        self.hlc >> Self::LOGICAL_BITS
    }
}

/// What is stored under a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    pub version: Version,
    /// Absolute expiry, milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
}

impl Record {
    /// Readable at `now_ms`: not a tombstone and not expired.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.value.is_some() && self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key's ring id (the node computes it with its hash size).
    pub id: Id,
    pub key: Vec<u8>,
    pub record: Record,
}
