//! Versioned key/value storage for a dht node, behind one small trait.
//!
//! Every entry carries a [`Version`] (hybrid logical clock + writer node id) and the newest
//! version wins on every write path, so replicas converge whatever order writes arrive in.
//! Deletes are tombstones (kept so a stale copy cannot resurrect a deleted key) and entries
//! may carry an absolute expiry. Entries are ordered by (key id, key), so the entries of a ring
//! interval can be scanned for handoff and anti-entropy. This crate knows nothing of the
//! network; the node passes the current time in milliseconds where it matters.
//!
//! Two engines implement [`Store`]: [`MemoryStore`] for tests and ephemeral nodes, and
//! [`RedbStore`], one redb database file per data directory, with group commit and a choice of
//! [`Durability`]. Errors say what the operator can do about them: a data directory already in
//! use ([`StoreError::Locked`]), a damaged file ([`StoreError::Corrupt`], never a silent empty
//! start), or an I/O failure naming the path ([`StoreError::Io`]).
//!
//! Modules: `entry` (the data model), `memory` (the in-memory engine), `options` (durability
//! and cache settings), `redb_engine` (the persistent engine: table encoding, error mapping,
//! the group-commit writer thread).

#[cfg(test)]
mod engine_tests;
mod entry;
mod memory;
#[cfg(test)]
mod model_tests;
mod options;
mod redb_engine;

pub use entry::{Entry, Record, Version};
pub use memory::MemoryStore;
pub use options::{Durability, StoreOptions};
pub use redb_engine::{RedbStats, RedbStore};

use dht_core::Id;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("storage backend error: {0}")]
    Backend(String),
    /// Another process (or another store in this process) holds the database's file lock.
    #[error(
        "database {path} is locked: another dhtd is probably using this data directory \
         (stop it, or give this node its own data directory)"
    )]
    Locked { path: String },
    /// The database file is damaged; the store refuses to open it rather than start empty.
    #[error(
        "database {path} is corrupt: {detail} (restore it from a backup, or move it aside to \
         start this node empty and let replication refill it)"
    )]
    Corrupt { path: String, detail: String },
}

/// The purge rule shared by every engine: an entry goes once it has expired, a tombstone once
/// its version is at least `tombstone_grace_ms` old.
pub(crate) fn purgeable(
    tombstone: bool,
    version: Version,
    expires_at_ms: Option<u64>,
    now_ms: u64,
    tombstone_grace_ms: u64,
) -> bool {
    let expired = expires_at_ms.is_some_and(|t| now_ms >= t);
    let old_tombstone =
        tombstone && now_ms.saturating_sub(version.physical_ms()) >= tombstone_grace_ms;
    expired || old_tombstone
}

/// How [`Store::apply_then`] answers.
pub type ApplyDone = Box<dyn FnOnce(Result<Vec<bool>, StoreError>) + Send>;

/// A storage engine. Methods block (a durable engine waits for its commit), so async callers
/// run them on a blocking thread.
pub trait Store: Send + Sync + 'static {
    /// Stores each entry unless the stored one has a version at least as new. Returns, per
    /// entry, whether it was written. The whole call is one commit.
    fn apply(&self, entries: &[Entry]) -> Result<Vec<bool>, StoreError>;

    /// [`Store::apply`] without blocking the caller for the commit: `done` receives the
    /// result, possibly on another thread. An engine that commits on a writer thread answers
    /// from there, so an async caller needs no blocking thread per write (on two cores the
    /// thread hand-offs cost more than the writes). The default applies in place.
    fn apply_then(&self, entries: &[Entry], done: ApplyDone) {
        done(self.apply(entries))
    }

    /// The stored entry for `key` (whose id is `id`), tombstones and expired entries included:
    /// the caller decides, with [`Record::is_live`].
    fn get(&self, id: Id, key: &[u8]) -> Result<Option<Entry>, StoreError>;

    /// Entries whose id lies in the ring interval (from, to], in ring order starting just after
    /// `from` and wrapping around; `after` resumes a previous page after that (id, key). With
    /// `from == to` the interval is the whole ring.
    fn scan(
        &self,
        from: Id,
        to: Id,
        after: Option<(Id, Vec<u8>)>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Deletes expired entries (those with `now_ms >= expires_at_ms`), and tombstones whose
    /// version is at least `tombstone_grace_ms` old (`now_ms` minus the version's
    /// [`Version::physical_ms`]; a version ahead of `now_ms` counts as age 0). Returns how many
    /// entries were removed.
    fn purge(&self, now_ms: u64, tombstone_grace_ms: u64) -> Result<usize, StoreError>;

    /// Removes each entry whose stored version is still exactly the given one; an entry that
    /// a newer write replaced meanwhile stays. Used once a range was handed to its new owner,
    /// so that a stale copy can never travel back after the owner purged a newer tombstone.
    /// Returns how many entries were removed. One commit.
    fn remove_versions(&self, entries: &[(Id, Vec<u8>, Version)]) -> Result<usize, StoreError>;

    /// Number of stored entries, tombstones included.
    fn len(&self) -> Result<u64, StoreError>;

    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Makes every acknowledged write durable (a no-op for engines without deferred writes,
    /// and for a persistent engine in [`Durability::Sync`]). Call before a planned shutdown.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
