//! The on-disk encoding of table keys and records.
//!
//! Keys are the 20-byte big-endian ring id followed by the user key, so redb's lexicographic
//! byte order is exactly (id, key) order and a ring interval is a contiguous key range.
//!
//! Records are a small hand-written binary format rather than serde, so the layout is fixed,
//! documented here and versioned by its first byte:
//!
//! ```text
//! [format = 1][flags][hlc: u64 BE][node: u64 BE][expires_at_ms: u64 BE, if flags & EXPIRES][value bytes, if flags & VALUE]
//! ```
//!
//! A reader that meets an unknown format byte, unknown flags or a short buffer reports the
//! record as corrupt instead of guessing.

use dht_core::Id;

use crate::{Record, Version};

/// Bytes of the id prefix of every table key.
pub const ID_LEN: usize = 20;

const FORMAT_V1: u8 = 1;
const FLAG_VALUE: u8 = 0b01;
const FLAG_EXPIRES: u8 = 0b10;
const HEADER_LEN: usize = 2 + 8 + 8;

/// The table key of (id, key).
pub fn encode_key(id: Id, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ID_LEN + key.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits a table key into (id, key).
pub fn decode_key(raw: &[u8]) -> Result<(Id, &[u8]), String> {
    if raw.len() < ID_LEN {
        return Err(format!(
            "table key of {} bytes is shorter than an id",
            raw.len()
        ));
    }
    let id = Id::from_slice(&raw[..ID_LEN]).map_err(|e| format!("bad id in table key: {e}"))?;
    Ok((id, &raw[ID_LEN..]))
}

pub fn encode_record(r: &Record) -> Vec<u8> {
    let value_len = r.value.as_ref().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(HEADER_LEN + 8 + value_len);
    let mut flags = 0;
    if r.value.is_some() {
        flags |= FLAG_VALUE;
    }
    if r.expires_at_ms.is_some() {
        flags |= FLAG_EXPIRES;
    }
    out.push(FORMAT_V1);
    out.push(flags);
    out.extend_from_slice(&r.version.hlc.to_be_bytes());
    out.extend_from_slice(&r.version.node.to_be_bytes());
    if let Some(t) = r.expires_at_ms {
        out.extend_from_slice(&t.to_be_bytes());
    }
    if let Some(v) = &r.value {
        out.extend_from_slice(v);
    }
    out
}

/// What purge and the version check need, without copying the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    pub expires_at_ms: Option<u64>,
    pub tombstone: bool,
}

impl Header {
    /// The purge rule, shared with [`crate::MemoryStore`] through [`crate::purgeable`].
    pub fn purgeable(&self, now_ms: u64, tombstone_grace_ms: u64) -> bool {
        crate::purgeable(
            self.tombstone,
            self.version,
            self.expires_at_ms,
            now_ms,
            tombstone_grace_ms,
        )
    }
}

fn u64_at(raw: &[u8], at: usize) -> Result<u64, String> {
    raw.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| format!("record of {} bytes is truncated", raw.len()))
}

/// Decodes the header and returns it with the offset where the value starts.
pub fn decode_header(raw: &[u8]) -> Result<(Header, usize), String> {
    let (&format, rest) = raw.split_first().ok_or("empty record")?;
    if format != FORMAT_V1 {
        return Err(format!("unknown record format {format}"));
    }
    let &flags = rest.first().ok_or("record has no flags byte")?;
    if flags & !(FLAG_VALUE | FLAG_EXPIRES) != 0 {
        return Err(format!("unknown record flags {flags:#04x}"));
    }
    let version = Version {
        hlc: u64_at(raw, 2)?,
        node: u64_at(raw, 10)?,
    };
    let mut at = HEADER_LEN;
    let expires_at_ms = if flags & FLAG_EXPIRES != 0 {
        at += 8;
        Some(u64_at(raw, HEADER_LEN)?)
    } else {
        None
    };
    let tombstone = flags & FLAG_VALUE == 0;
    if tombstone && raw.len() != at {
        return Err("tombstone record carries value bytes".into());
    }
    let header = Header {
        version,
        expires_at_ms,
        tombstone,
    };
    Ok((header, at))
}

pub fn decode_record(raw: &[u8]) -> Result<Record, String> {
    let (h, at) = decode_header(raw)?;
    Ok(Record {
        value: (!h.tombstone).then(|| raw[at..].to_vec()),
        version: h.version,
        expires_at_ms: h.expires_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn record_round_trips(
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            hlc: u64, node: u64, exp in proptest::option::of(any::<u64>()),
        ) {
            let r = Record { value, version: Version { hlc, node }, expires_at_ms: exp };
            prop_assert_eq!(decode_record(&encode_record(&r)).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_record(&raw);
            let _ = decode_key(&raw);
        }

        #[test]
        fn key_order_is_id_then_key(
            a: [u8; 20], ka in proptest::collection::vec(any::<u8>(), 0..4),
            b: [u8; 20], kb in proptest::collection::vec(any::<u8>(), 0..4),
        ) {
            let (ia, ib) = (Id::from_be_bytes(a), Id::from_be_bytes(b));
            prop_assert_eq!(
                encode_key(ia, &ka).cmp(&encode_key(ib, &kb)),
                (ia, &ka).cmp(&(ib, &kb))
            );
        }
    }

    #[test]
    fn truncated_and_unknown_records_are_errors() {
        let r = Record {
            value: Some(b"v".to_vec()),
            version: Version { hlc: 1, node: 2 },
            expires_at_ms: Some(3),
        };
        let raw = encode_record(&r);
        assert!(decode_record(&raw[..raw.len() - 2]).is_err());
        let mut bad = raw.clone();
        bad[0] = 9;
        assert!(decode_record(&bad).is_err());
        bad = raw;
        bad[1] = 0x80;
        assert!(decode_record(&bad).is_err());
        assert!(decode_key(&[0; 19]).is_err());
    }
}
