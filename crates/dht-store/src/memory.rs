//! The in-memory engine: for tests and `--ephemeral` nodes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use dht_core::Id;

use crate::{Entry, Record, Store, StoreError, Version};

/// A BTreeMap ordered by (id, key). The mutex is held only for map operations, never across
/// anything that waits.
#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<(Id, Vec<u8>), Record>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Id, Vec<u8>), Record>> {
        // A panic while holding the lock cannot leave the map half-updated (every update is a
        // single insert or remove), so a poisoned lock is still safe to use.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn apply(&self, entries: &[Entry]) -> Result<Vec<bool>, StoreError> {
        let mut map = self.lock();
        Ok(entries
            .iter()
            .map(|e| {
                let k = (e.id, e.key.clone());
                match map.get(&k) {
                    Some(old) if old.version >= e.record.version => false,
                    _ => {
                        map.insert(k, e.record.clone());
                        true
                    }
                }
            })
            .collect())
    }

    fn get(&self, id: Id, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        let map = self.lock();
        Ok(map.get(&(id, key.to_vec())).map(|r| Entry {
            id,
            key: key.to_vec(),
            record: r.clone(),
        }))
    }

    fn scan(
        &self,
        from: Id,
        to: Id,
        after: Option<(Id, Vec<u8>)>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let map = self.lock();
        let mut out = Vec::new();
        // (from, to] in ring order is segment A = ids after `from` (up to `to` unless the
        // interval wraps), then, if it wraps, segment B = ids from 0 up to `to`.
        let wraps = from >= to;
        let in_a = |id: Id| id > from && (wraps || id <= to);
        let in_b = |id: Id| wraps && id <= to;
        let cursor_in_b = after.as_ref().is_some_and(|(id, _)| *id <= from);
        let bound = |k: &Option<(Id, Vec<u8>)>, default: (Id, Vec<u8>)| match k {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Included(default),
        };
        if !cursor_in_b {
            let start = bound(&after, (from, Vec::new()));
            for ((id, key), rec) in map.range((start, Bound::Unbounded)) {
                if *id == from {
                    continue;
                }
                if !in_a(*id) || out.len() == limit {
                    break;
                }
                out.push(Entry {
                    id: *id,
                    key: key.clone(),
                    record: rec.clone(),
                });
            }
        }
        if wraps {
            let start = if cursor_in_b {
                bound(&after, (Id::ZERO, Vec::new()))
            } else {
                Bound::Unbounded
            };
            for ((id, key), rec) in map.range((start, Bound::Unbounded)) {
                if !in_b(*id) || out.len() == limit {
                    break;
                }
                out.push(Entry {
                    id: *id,
                    key: key.clone(),
                    record: rec.clone(),
                });
            }
        }
        Ok(out)
    }

    fn purge(&self, now_ms: u64, tombstone_grace_ms: u64) -> Result<usize, StoreError> {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, r| {
            !crate::purgeable(
                r.value.is_none(),
                r.version,
                r.expires_at_ms,
                now_ms,
                tombstone_grace_ms,
            )
        });
        Ok(before - map.len())
    }

    fn remove_versions(&self, entries: &[(Id, Vec<u8>, Version)]) -> Result<usize, StoreError> {
        let mut map = self.lock();
        let mut removed = 0;
        for (id, key, v) in entries {
            let k = (*id, key.clone());
            if map.get(&k).is_some_and(|r| r.version == *v) {
                map.remove(&k);
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.lock().len() as u64)
    }
}
