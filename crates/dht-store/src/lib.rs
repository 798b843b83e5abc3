//! Versioned key/value storage for a dht node, behind one small trait.
//!
//! Every entry carries a [`Version`] (hybrid logical clock + writer node id) and the newest
//! version wins on every write path, so replicas converge whatever order writes arrive in.
//! Deletes are tombstones (kept so a stale copy cannot resurrect a deleted key) and entries
//! may carry an absolute expiry. Entries are ordered by (key id, key), so the entries of a ring
//! interval can be scanned for handoff and anti-entropy. This crate knows nothing of the
//! network; the node passes the current time in milliseconds where it matters.
//!
//! Modules: `entry` (the data model), `memory` (the in-memory engine).

mod entry;
mod memory;

pub use entry::{Entry, Record, Version};
pub use memory::MemoryStore;

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
}

/// A storage engine. Methods block (a durable engine waits for its commit), so async callers
/// run them on a blocking thread.
pub trait Store: Send + Sync + 'static {
    /// Stores each entry unless the stored one has a version at least as new. Returns, per
    /// entry, whether it was written. The whole call is one commit.
    fn apply(&self, entries: &[Entry]) -> Result<Vec<bool>, StoreError>;

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

    /// Deletes expired entries, and tombstones older than `tombstone_grace_ms`. Returns how
    /// many entries were removed.
    fn purge(&self, now_ms: u64, tombstone_grace_ms: u64) -> Result<usize, StoreError>;

    /// Number of stored entries, tombstones included.
    fn len(&self) -> Result<u64, StoreError>;
}
