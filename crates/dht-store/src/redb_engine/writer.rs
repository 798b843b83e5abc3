//! The single writer thread: group commit and deferred durability.
//!
//! redb allows one write transaction at a time and a durable commit costs an fsync, so instead
//! of every caller taking the write lock and paying its own fsync, callers send their writes
//! down a channel and wait on a private reply channel. The writer takes the first waiting
//! request, drains whatever else is already queued (up to [`MAX_GROUP_ENTRIES`]), applies all
//! of it in one transaction, commits once and answers everyone. Under load the fsync is shared
//! by many callers; an idle store still commits a lone request at once.
//!
//! In [`Durability::Async`] the commits are redb `Durability::None`: visible to readers
//! immediately, but on disk only once a later durable commit happens. The writer makes one
//! whenever `flush_interval` has passed since the last, on an explicit flush, and on shutdown.
//!
//! A group fails as a whole only when the commit itself fails. If one request fails (say, a
//! corrupt stored record), the group is aborted and its requests are retried one transaction
//! each, so the error reaches only the caller that caused it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use redb::{Database, ReadableTable};

use super::codec::decode_header;
use super::errors::{corrupt, duplicate, guard, map};
use super::ENTRIES;
use crate::{Durability, StoreError, Version};

/// Upper bound on entries applied in one group transaction, so one commit stays short.
const MAX_GROUP_ENTRIES: usize = 16_384;
/// Requests that may wait in the channel before callers block (backpressure).
const QUEUE_DEPTH: usize = 1024;

/// One encoded write: the caller encodes, so the writer thread only compares and inserts.
pub struct Put {
    pub key: Vec<u8>,
    pub version: Version,
    pub record: Vec<u8>,
}

pub enum Op {
    Apply(Vec<Put>),
    /// Remove these keys if they are still purgeable (a newer write may have replaced them
    /// since the purge scan found them).
    Purge {
        keys: Vec<Vec<u8>>,
        now_ms: u64,
        grace_ms: u64,
    },
    /// Remove these keys if they still hold exactly this version (a newer write stays).
    Remove(Vec<(Vec<u8>, Version)>),
    /// A durable commit of everything acknowledged so far.
    Flush,
}

impl Op {
    fn weight(&self) -> usize {
        match self {
            Op::Apply(p) => p.len(),
            Op::Purge { keys, .. } => keys.len(),
            Op::Remove(keys) => keys.len(),
            Op::Flush => 1,
        }
    }
}

pub enum Outcome {
    Applied(Vec<bool>),
    Purged(usize),
    Flushed,
}

/// How the writer answers a request: a caller blocked on a private channel, or a callback for
/// callers that must not block (an async node waits on a oneshot the callback fills).
type Reply = Box<dyn FnOnce(Result<Outcome, StoreError>) + Send>;

struct Request {
    op: Op,
    reply: Reply,
}

/// What the writer has done since the store was opened; read by [`super::RedbStore::stats`].
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub commits: AtomicU64,
    pub durable_commits: AtomicU64,
}

/// The store's handle on its writer thread. Dropping it flushes and stops the thread.
pub struct WriterHandle {
    tx: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
    pub counters: Arc<Counters>,
}

impl WriterHandle {
    pub fn spawn(
        db: Arc<Database>,
        path: PathBuf,
        durability: Durability,
    ) -> Result<WriterHandle, StoreError> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            counters: counters.clone(),
            db,
            path: path.clone(),
            durability,
            dirty: false,
            last_flush: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("dht-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(WriterHandle {
            tx: Some(tx),
            thread: Some(thread),
            path,
            counters,
        })
    }

    fn stopped(&self) -> StoreError {
        StoreError::Backend(format!(
            "{}: the storage writer thread has stopped",
            self.path.display()
        ))
    }

    /// Sends `op` and waits for its commit.
    pub fn call(&self, op: Op) -> Result<Outcome, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.call_then(
            op,
            Box::new(move |r| {
                let _ = reply.send(r);
            }),
        );
        answer.recv().map_err(|_| self.stopped())?
    }

    /// Sends `op`; `done` runs on the writer thread once it committed (or at once, with the
    /// error, if the writer has stopped). Waits only while the writer's queue is full.
    pub fn call_then(&self, op: Op, done: Reply) {
        let Some(tx) = self.tx.as_ref() else {
            return done(Err(self.stopped()));
        };
        if let Err(mpsc::SendError(r)) = tx.send(Request { op, reply: done }) {
            (r.reply)(Err(self.stopped()));
        }
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // Closing the channel is the stop signal; the writer flushes before it returns.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Writer {
    counters: Arc<Counters>,
    db: Arc<Database>,
    path: PathBuf,
    durability: Durability,
    /// Non-durable commits not yet covered by a durable one (Async only).
    dirty: bool,
    last_flush: Instant,
}

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        while let Some(first) = self.next(&rx) {
            let mut group = vec![first];
            let mut weight = group[0].op.weight();
            while weight < MAX_GROUP_ENTRIES {
                match rx.try_recv() {
                    Ok(r) => {
                        weight += r.op.weight();
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        if self.dirty {
            // Nobody is left to tell about a failure here; the next open recovers to the last
            // durable commit, which is the documented Async risk.
            let _ = self.flush();
        }
    }

    /// The next request, making the periodic durable commit while waiting for it in Async
    /// mode. `None` once the store has been dropped.
    fn next(&mut self, rx: &Receiver<Request>) -> Option<Request> {
        loop {
            let Durability::Async { flush_interval } = self.durability else {
                return rx.recv().ok();
            };
            if !self.dirty {
                return rx.recv().ok();
            }
            let wait = (self.last_flush + flush_interval).saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(r) => return Some(r),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    if self.flush().is_err() {
                        // Retry after another interval rather than spin; the next group that
                        // is due for a durable commit reports the error to its callers.
                        self.last_flush = Instant::now();
                    }
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        execute(&self.db, &self.path, &[&Op::Flush], true).map_err(|(_, e)| e)?;
        self.committed(true);
        Ok(())
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        self.counters
            .requests
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        let durable = match self.durability {
            Durability::Sync => true,
            Durability::Async { flush_interval } => {
                group.iter().any(|r| matches!(r.op, Op::Flush))
                    || self.last_flush.elapsed() >= flush_interval
            }
        };
        let ops: Vec<&Op> = group.iter().map(|r| &r.op).collect();
        match execute(&self.db, &self.path, &ops, durable) {
            Ok(outcomes) => {
                self.committed(durable);
                for (r, o) in group.into_iter().zip(outcomes) {
                    (r.reply)(Ok(o));
                }
            }
            Err((None, e)) => {
                for r in group {
                    (r.reply)(Err(duplicate(&e)));
                }
            }
            Err((Some(_), _)) => {
                for r in group {
                    let answer = match execute(&self.db, &self.path, &[&r.op], durable) {
                        Ok(mut o) => {
                            self.committed(durable);
                            o.pop()
                                .ok_or_else(|| StoreError::Backend("no outcome".into()))
                        }
                        Err((_, e)) => Err(e),
                    };
                    (r.reply)(answer);
                }
            }
        }
    }

    fn committed(&mut self, durable: bool) {
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        if durable {
            self.counters
                .durable_commits
                .fetch_add(1, Ordering::Relaxed);
            self.dirty = false;
            self.last_flush = Instant::now();
        } else {
            self.dirty = true;
        }
    }
}

/// Runs `ops` in one write transaction. On failure, says which op failed (`None`: the
/// transaction itself).
fn execute(
    db: &Database,
    path: &std::path::Path,
    ops: &[&Op],
    durable: bool,
) -> Result<Vec<Outcome>, (Option<usize>, StoreError)> {
    // A panic inside redb (a damaged page) fails the whole group as corrupt; the retry of
    // each request on its own then tells each caller.
    let mut failed_op = None;
    let result = guard(path, || {
        execute_inner(db, path, ops, durable).map_err(|(i, e)| {
            failed_op = i;
            e
        })
    });
    result.map_err(|e| (failed_op, e))
}

fn execute_inner(
    db: &Database,
    path: &std::path::Path,
    ops: &[&Op],
    durable: bool,
) -> Result<Vec<Outcome>, (Option<usize>, StoreError)> {
    let whole = |e: StoreError| (None, e);
    let mut txn = db.begin_write().map_err(|e| whole(map(path, e)))?;
    txn.set_durability(if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    });
    let mut outcomes = Vec::with_capacity(ops.len());
    {
        let mut table = txn.open_table(ENTRIES).map_err(|e| whole(map(path, e)))?;
        for (i, op) in ops.iter().enumerate() {
            let outcome = run_op(&mut table, path, op).map_err(|e| (Some(i), e))?;
            outcomes.push(outcome);
        }
    }
    txn.commit().map_err(|e| whole(map(path, e)))?;
    Ok(outcomes)
}

type Table<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

fn run_op(table: &mut Table<'_>, path: &std::path::Path, op: &Op) -> Result<Outcome, StoreError> {
    let header_at = |table: &Table<'_>, key: &[u8]| -> Result<Option<_>, StoreError> {
        match table.get(key).map_err(|e| map(path, e))? {
            None => Ok(None),
            Some(old) => decode_header(old.value())
                .map(|(h, _)| Some(h))
                .map_err(|d| corrupt(path, d)),
        }
    };
    match op {
        Op::Apply(puts) => {
            let mut written = Vec::with_capacity(puts.len());
            for p in puts {
                let newer = header_at(table, &p.key)?.is_none_or(|h| p.version > h.version);
                if newer {
                    table
                        .insert(p.key.as_slice(), p.record.as_slice())
                        .map_err(|e| map(path, e))?;
                }
                written.push(newer);
            }
            Ok(Outcome::Applied(written))
        }
        Op::Purge {
            keys,
            now_ms,
            grace_ms,
        } => {
            let mut removed = 0;
            for k in keys {
                if header_at(table, k)?.is_some_and(|h| h.purgeable(*now_ms, *grace_ms)) {
                    table.remove(k.as_slice()).map_err(|e| map(path, e))?;
                    removed += 1;
                }
            }
            Ok(Outcome::Purged(removed))
        }
        Op::Remove(keys) => {
            let mut removed = 0;
            for (k, v) in keys {
                if header_at(table, k)?.is_some_and(|h| h.version == *v) {
                    table.remove(k.as_slice()).map_err(|e| map(path, e))?;
                    removed += 1;
                }
            }
            Ok(Outcome::Purged(removed))
        }
        Op::Flush => Ok(Outcome::Flushed),
    }
}
