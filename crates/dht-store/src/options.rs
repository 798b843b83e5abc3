//! How a persistent engine trades latency for durability.
//!
//! The choice is the operator's: `Sync` never acknowledges a write that a crash could lose;
//! `Async` acknowledges writes before they are on disk and bounds the loss to one
//! `flush_interval`. Both are explained on [`Durability`].

use std::time::Duration;

/// When an acknowledged write is on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `apply` returns only after its data is committed with an fsync. Concurrent callers are
    /// group-committed (one transaction, one fsync for all requests waiting at that moment), so
    /// throughput grows with concurrency while each caller still waits for its own commit.
    #[default]
    Sync,
    /// `apply` returns after a non-durable commit: the data is visible to readers at once but is
    /// written durably only by a background flush at least every `flush_interval`, and when the
    /// store is dropped or [`crate::Store::flush`] is called.
    ///
    /// Risk: writes acknowledged within the last `flush_interval` before a power failure,
    /// kernel crash or `kill -9` are lost (the database reopens at the last durable commit,
    /// which is consistent, never torn). In a replicated dht that is usually acceptable — other
    /// replicas and anti-entropy still hold the data — but a single-replica deployment should
    /// stay on `Sync`.
    ///
    /// Cost: redb frees the pages replaced by non-durable commits only at the next durable
    /// commit, so the file grows faster than under `Sync` (about 4x after a 1M-entry bulk load
    /// with a 1 s interval) and redb does not shrink it by itself. On a fast disk the latency
    /// gain is small, because a commit's page writes cost more than its fsync.
    Async { flush_interval: Duration },
}

/// Options of a persistent engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    pub durability: Durability,
    /// Page cache of the engine, in bytes. Bounds how much of the database is kept in memory
    /// (the rest is read from the file on demand).
    pub cache_bytes: usize,
}

impl StoreOptions {
    /// Default page cache: large enough for the hot part of a few million small entries,
    /// small enough not to dominate a node's memory.
    pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Sync,
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
        }
    }
}
