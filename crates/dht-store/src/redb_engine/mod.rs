//! The persistent engine: one redb database file, `dht.redb`, in the node's data directory.
//!
//! redb is an embedded, pure-Rust B-tree store with copy-on-write transactions and checksummed
//! commits: a crash leaves the last commit intact, and readers never block the writer. One
//! table, `entries`, maps `id ++ key` to an encoded [`Record`](crate::Record) (see `codec`), so
//! a ring interval is a key range. A `meta` table records the schema version.
//!
//! Reads run on the caller's thread in their own read transaction; every write goes through
//! the writer thread (`writer`), which group-commits concurrent callers. Opening refuses, with
//! an error that says why, a database that another process holds, one that is damaged, and an
//! existing but empty file (which redb would silently initialise as a new, empty database).

mod codec;
mod errors;
mod read;
#[cfg(test)]
mod tests;
mod writer;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use dht_core::Id;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::{Durability, Entry, Store, StoreError, StoreOptions, Version};
use codec::{encode_key, encode_record};
use errors::{corrupt, guard, map};
use writer::{Op, Outcome, Put, WriterHandle};

pub(crate) const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_KEY: &str = "schema";
const SCHEMA: u64 = 1;

/// What a [`RedbStore`] holds and has done since it was opened, for `dhtctl info` and
/// benchmarks. `requests / commits` is the group-commit factor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedbStats {
    /// Stored entries, tombstones included.
    pub entries: u64,
    /// Write requests (apply, purge batch, flush) answered by the writer.
    pub requests: u64,
    /// Write transactions committed.
    pub commits: u64,
    /// Of those, commits made durable with an fsync.
    pub durable_commits: u64,
}

/// A [`Store`] in a redb database file. Dropping it flushes pending writes, stops the writer
/// thread and releases the file lock.
pub struct RedbStore {
    // Field order matters: the writer must stop (and flush) before the database closes.
    writer: WriterHandle,
    db: Arc<Database>,
    path: PathBuf,
    durability: Durability,
}

impl RedbStore {
    /// Name of the database file inside the data directory.
    pub const FILE_NAME: &'static str = "dht.redb";

    /// Opens (creating if needed) the database in `dir`, creating `dir` too.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<RedbStore, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(Self::FILE_NAME);
        let mut builder = Database::builder();
        builder.set_cache_size(opts.cache_bytes);
        let existed = match fs::metadata(&path) {
            Ok(m) if m.len() == 0 => {
                return Err(corrupt(
                    &path,
                    "the file is empty; if this directory never held data, delete the file",
                ))
            }
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        // redb asserts on some malformed files (a truncated one trips a length assertion)
        // instead of returning an error; `guard` reports that as a corrupt file.
        let opened = guard(&path, || {
            Ok(if existed {
                builder.open(&path)
            } else {
                builder.create(&path)
            })
        })?;
        let db = opened.map_err(|e| match map(&path, e) {
            // A file cut short fails while redb reads its header or a page.
            StoreError::Io { path, source }
                if existed
                    && matches!(
                        source.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                    ) =>
            {
                StoreError::Corrupt {
                    path,
                    detail: format!("the file is not a readable redb database ({source})"),
                }
            }
            other => other,
        })?;
        init_schema(&db, &path)?;
        let db = Arc::new(db);
        let writer = WriterHandle::spawn(db.clone(), path.clone(), opts.durability)?;
        Ok(RedbStore {
            writer,
            db,
            path,
            durability: opts.durability,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> Result<RedbStats, StoreError> {
        let c = &self.writer.counters;
        Ok(RedbStats {
            entries: self.len()?,
            requests: c.requests.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            durable_commits: c.durable_commits.load(Ordering::Relaxed),
        })
    }

    /// Reads and decodes every entry, returning how many there are. redb verifies page
    /// checksums only when recovering from a crash, so damage inside a cleanly closed file
    /// shows up only when a page is read; this reads them all (for an operator's check, or a
    /// test). Takes time proportional to the database size.
    pub fn verify(&self) -> Result<u64, StoreError> {
        guard(&self.path, || self.read_verify())
    }

    /// Deletes every entry, bypassing the writer (tests only: the writer must be idle).
    #[cfg(test)]
    pub(crate) fn clear_for_tests(&self) {
        let txn = self.db.begin_write().unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .retain(|_, _| false)
            .unwrap();
        txn.commit().unwrap();
    }
}

/// Creates the tables on first use and refuses a file written with another schema, or one
/// whose schema marker is gone while entries remain.
fn init_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(|e| map(path, e))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| map(path, e))?;
        let entries = txn.open_table(ENTRIES).map_err(|e| map(path, e))?;
        let schema = meta
            .get(SCHEMA_KEY)
            .map_err(|e| map(path, e))?
            .map(|g| g.value());
        match schema {
            Some(SCHEMA) => {}
            Some(other) => {
                return Err(corrupt(
                    path,
                    format!("schema {other} is not supported (this build reads schema {SCHEMA})"),
                ))
            }
            None if entries.len().map_err(|e| map(path, e))? > 0 => {
                return Err(corrupt(
                    path,
                    "entries present but the schema marker is missing",
                ))
            }
            None => {
                meta.insert(SCHEMA_KEY, SCHEMA).map_err(|e| map(path, e))?;
            }
        }
    }
    txn.commit().map_err(|e| map(path, e))
}

fn puts(entries: &[Entry]) -> Vec<Put> {
    entries
        .iter()
        .map(|e| Put {
            key: encode_key(e.id, &e.key),
            version: e.record.version,
            record: encode_record(&e.record),
        })
        .collect()
}

impl Store for RedbStore {
    fn apply(&self, entries: &[Entry]) -> Result<Vec<bool>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        match self.writer.call(Op::Apply(puts(entries)))? {
            Outcome::Applied(w) => Ok(w),
            _ => Err(StoreError::Backend("writer answered apply wrongly".into())),
        }
    }

    fn apply_then(&self, entries: &[Entry], done: crate::ApplyDone) {
        if entries.is_empty() {
            return done(Ok(Vec::new()));
        }
        self.writer.call_then(
            Op::Apply(puts(entries)),
            Box::new(move |r| {
                done(r.and_then(|o| match o {
                    Outcome::Applied(w) => Ok(w),
                    _ => Err(StoreError::Backend("writer answered apply wrongly".into())),
                }))
            }),
        );
    }

    fn get(&self, id: Id, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        guard(&self.path, || self.read_get(id, key))
    }

    fn scan(
        &self,
        from: Id,
        to: Id,
        after: Option<(Id, Vec<u8>)>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        guard(&self.path, || self.read_scan(from, to, after, limit))
    }

    fn purge(&self, now_ms: u64, tombstone_grace_ms: u64) -> Result<usize, StoreError> {
        guard(&self.path, || self.read_purge(now_ms, tombstone_grace_ms))
    }

    fn len(&self) -> Result<u64, StoreError> {
        guard(&self.path, || self.read_len())
    }

    fn remove_versions(&self, entries: &[(Id, Vec<u8>, Version)]) -> Result<usize, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let keys = entries
            .iter()
            .map(|(id, key, v)| (encode_key(*id, key), *v))
            .collect();
        match self.writer.call(Op::Remove(keys))? {
            Outcome::Purged(n) => Ok(n),
            _ => Err(StoreError::Backend("writer answered remove wrongly".into())),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        if self.durability == Durability::Sync {
            return Ok(());
        }
        self.writer.call(Op::Flush).map(|_| ())
    }
}
