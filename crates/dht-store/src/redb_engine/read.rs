//! The read side of [`RedbStore`]: each call runs in its own read transaction on the caller's
//! thread, so reads never wait for the writer and always see a consistent snapshot. Purge
//! lives here too because it is mostly a read: it finds candidates in a snapshot and hands
//! them to the writer in small batches, so a large purge never stalls writes.

use std::ops::Bound;

use dht_core::Id;
use redb::{ReadableTable, ReadableTableMetadata};

use super::codec::{decode_header, decode_key, decode_record, encode_key};
use super::errors::{corrupt, map};
use super::writer::{Op, Outcome};
use super::{RedbStore, ENTRIES};
use crate::{Entry, StoreError};

/// Keys removed per purge transaction, so a large purge does not stall writers.
const PURGE_CHUNK: usize = 1024;

/// The smallest 20-byte id strictly greater than `id`, or `None` at the top of the space.
fn next_id(id: Id) -> Option<[u8; 20]> {
    let mut b = id.to_be_bytes();
    for byte in b.iter_mut().rev() {
        if *byte == u8::MAX {
            *byte = 0;
        } else {
            *byte += 1;
            return Some(b);
        }
    }
    None
}

impl RedbStore {
    fn read_table(&self) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| map(&self.path, e))?;
        txn.open_table(ENTRIES).map_err(|e| map(&self.path, e))
    }

    fn entry(&self, k: &[u8], v: &[u8]) -> Result<Entry, StoreError> {
        let (id, key) = decode_key(k).map_err(|d| corrupt(&self.path, d))?;
        let record = decode_record(v).map_err(|d| corrupt(&self.path, d))?;
        Ok(Entry {
            id,
            key: key.to_vec(),
            record,
        })
    }

    /// Appends entries from `range` while `keep(id)` holds and `out` has room.
    fn collect<'a>(
        &self,
        range: redb::Range<'a, &'static [u8], &'static [u8]>,
        keep: impl Fn(Id) -> bool,
        limit: usize,
        out: &mut Vec<Entry>,
    ) -> Result<(), StoreError> {
        for item in range {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| map(&self.path, e))?;
            let e = self.entry(k.value(), v.value())?;
            if !keep(e.id) {
                break;
            }
            out.push(e);
        }
        Ok(())
    }

    pub(super) fn read_get(&self, id: Id, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        let table = self.read_table()?;
        let raw = encode_key(id, key);
        match table.get(raw.as_slice()).map_err(|e| map(&self.path, e))? {
            None => Ok(None),
            Some(v) => self.entry(&raw, v.value()).map(Some),
        }
    }

    pub(super) fn read_scan(
        &self,
        from: Id,
        to: Id,
        after: Option<(Id, Vec<u8>)>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let table = self.read_table()?;
        let mut out = Vec::new();
        // Segment A: ids after `from` (up to `to` unless the interval wraps); segment B, when
        // it wraps: ids from 0 up to `to`. Same plan as MemoryStore.
        let wraps = from >= to;
        let cursor = after.map(|(id, k)| (id, encode_key(id, &k)));
        let cursor_in_b = cursor.as_ref().is_some_and(|(id, _)| *id <= from);
        if !cursor_in_b {
            let lo = match &cursor {
                Some((_, c)) => Some(Bound::Excluded(c.clone())),
                None => next_id(from).map(|b| Bound::Included(b.to_vec())),
            };
            if let Some(lo) = lo {
                let lo = lo.as_ref().map(Vec::as_slice);
                let range = table
                    .range::<&[u8]>((lo, Bound::Unbounded))
                    .map_err(|e| map(&self.path, e))?;
                self.collect(range, |id| wraps || id <= to, limit, &mut out)?;
            }
        }
        if wraps && out.len() < limit {
            let lo = match &cursor {
                Some((_, c)) if cursor_in_b => Bound::Excluded(c.as_slice()),
                _ => Bound::Unbounded,
            };
            let range = table
                .range::<&[u8]>((lo, Bound::Unbounded))
                .map_err(|e| map(&self.path, e))?;
            self.collect(range, |id| id <= to, limit, &mut out)?;
        }
        Ok(out)
    }

    pub(super) fn read_purge(
        &self,
        now_ms: u64,
        tombstone_grace_ms: u64,
    ) -> Result<usize, StoreError> {
        // Find candidates in a read snapshot (writers keep going), then remove them in small
        // write transactions that re-check each key.
        let table = self.read_table()?;
        let mut removed = 0;
        let mut chunk = Vec::new();
        let mut send = |keys: Vec<Vec<u8>>| -> Result<(), StoreError> {
            match self.writer.call(Op::Purge {
                keys,
                now_ms,
                grace_ms: tombstone_grace_ms,
            })? {
                Outcome::Purged(n) => {
                    removed += n;
                    Ok(())
                }
                _ => Err(StoreError::Backend("writer answered purge wrongly".into())),
            }
        };
        for item in table.iter().map_err(|e| map(&self.path, e))? {
            let (k, v) = item.map_err(|e| map(&self.path, e))?;
            let (h, _) = decode_header(v.value()).map_err(|d| corrupt(&self.path, d))?;
            if h.purgeable(now_ms, tombstone_grace_ms) {
                chunk.push(k.value().to_vec());
                if chunk.len() == PURGE_CHUNK {
                    send(std::mem::take(&mut chunk))?;
                }
            }
        }
        if !chunk.is_empty() {
            send(chunk)?;
        }
        Ok(removed)
    }

    pub(super) fn read_len(&self) -> Result<u64, StoreError> {
        self.read_table()?.len().map_err(|e| map(&self.path, e))
    }

    pub(super) fn read_verify(&self) -> Result<u64, StoreError> {
        let table = self.read_table()?;
        let mut n = 0;
        for item in table.iter().map_err(|e| map(&self.path, e))? {
            let (k, v) = item.map_err(|e| map(&self.path, e))?;
            self.entry(k.value(), v.value())?;
            n += 1;
        }
        Ok(n)
    }
}
