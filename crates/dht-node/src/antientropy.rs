//! Anti-entropy (docs/protocol.md, "Anti-entropy"): each node compares its own range with
//! the other replicas by bucket digests and exchanges only the buckets that differ.
//!
//! One exchange, [`Node::sync_range`], serves every way a range moves to a node that lacks
//! part of it: the periodic round (both directions, with each of the first r − 1
//! successors) and a join (pull only, from the successor, before and after the notify). The
//! buckets and the digest function are `dht_core::digest`; this module reads the store,
//! talks to the peer and paces itself to `anti_entropy_rate_kib`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dht_core::digest::{self, Buckets, Digests};
use dht_core::{Id, Peer};
use dht_proto::v1 as pb;
use dht_store::Entry;
use prost::Message;
use tracing::debug;

use crate::convert;
use crate::local::blocking;
use crate::node::Node;
use crate::NodeError;

/// Buckets asked for per range: a few KiB of digests per replica and round, and at a million
/// keys a differing bucket holds about 500 of them.
pub(crate) const DIGEST_BUCKETS: u32 = 2048;
/// Most buckets moved by one transfer: adjacent differing buckets travel together (a join
/// pulls its range in 8 streams), yet a round never holds more than 1/8 of a range's
/// "already there" set in memory.
const RUN_BUCKETS: usize = 256;
/// Entries per scan page and per stored batch.
const PAGE: usize = 512;

/// What one exchange moved. `bytes` is everything (digests and entries), for pacing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Synced {
    pub(crate) differing: u64,
    pub(crate) pulled: u64,
    pub(crate) pushed: u64,
    pub(crate) digest_bytes: u64,
    pub(crate) bytes: u64,
}

impl Synced {
    fn add(&mut self, o: Synced) {
        self.differing += o.differing;
        self.pulled += o.pulled;
        self.pushed += o.pushed;
        self.digest_bytes += o.digest_bytes;
        self.bytes += o.bytes;
    }
}

/// Which way entries of a differing bucket move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Only into this node (a join: only the joining node's store changes).
    Pull,
    /// Both ways (the periodic round: either replica may be behind).
    Both,
}

/// The anti-entropy counters: registered with the node's other metrics
/// (`telemetry::Metrics::anti_entropy`), and kept as plain totals too so tests and `info` can
/// read them without a recorder.
pub(crate) struct AntiEntropyMetrics {
    handles: [metrics::Counter; 5],
    totals: [AtomicU64; 5],
}

/// Metric names, in the order of [`AntiEntropyMetrics`]' counters.
pub mod names {
    /// Counter of anti-entropy rounds run.
    pub const ROUNDS: &str = "dht_anti_entropy_rounds_total";
    /// Counter of buckets found differing from a replica.
    pub const BUCKETS_DIFFERING: &str = "dht_anti_entropy_buckets_differing_total";
    /// Counter of entries pulled from replicas.
    pub const PULLED: &str = "dht_anti_entropy_entries_pulled_total";
    /// Counter of entries pushed to replicas.
    pub const PUSHED: &str = "dht_anti_entropy_entries_pushed_total";
    /// Counter of bytes of digest requests and replies exchanged.
    pub const DIGEST_BYTES: &str = "dht_anti_entropy_digest_bytes_total";
}

const NAMES: [(&str, &str); 5] = [
    (names::ROUNDS, "Anti-entropy rounds run"),
    (
        names::BUCKETS_DIFFERING,
        "Digest buckets found differing from a replica",
    ),
    (
        names::PULLED,
        "Entries pulled from replicas by anti-entropy",
    ),
    (names::PUSHED, "Entries pushed to replicas by anti-entropy"),
    (
        names::DIGEST_BYTES,
        "Bytes of digest requests and replies exchanged by anti-entropy",
    ),
];

impl AntiEntropyMetrics {
    /// Registers the counters with the recorder installed now.
    pub(crate) fn new() -> AntiEntropyMetrics {
        for (name, help) in NAMES {
            metrics::describe_counter!(name, help);
        }
        AntiEntropyMetrics {
            handles: NAMES.map(|(name, _)| metrics::counter!(name)),
            totals: Default::default(),
        }
    }

    fn record(&self, s: &Synced) {
        let values = [1, s.differing, s.pulled, s.pushed, s.digest_bytes];
        for ((h, t), v) in self.handles.iter().zip(&self.totals).zip(values) {
            h.increment(v);
            t.fetch_add(v, Ordering::Relaxed);
        }
    }

    /// Totals since the node started.
    #[cfg(test)]
    pub(crate) fn totals(&self) -> Totals {
        let t = |i: usize| self.totals[i].load(Ordering::Relaxed);
        Totals {
            rounds: t(0),
            differing: t(1),
            pulled: t(2),
            pushed: t(3),
            digest_bytes: t(4),
        }
    }
}

/// What [`AntiEntropyMetrics::totals`] reports.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) rounds: u64,
    pub(crate) differing: u64,
    pub(crate) pulled: u64,
    pub(crate) pushed: u64,
    pub(crate) digest_bytes: u64,
}

impl Node {
    /// The `Digest` handler: this node's digests of the requested range. The asker is a
    /// predecessor that counts us among its replicas (or a joining node); the range is
    /// remembered so the replica GC keeps it (`replica_gc`).
    pub(crate) async fn digest(
        &self,
        req: pb::DigestRequest,
    ) -> Result<pb::DigestReply, NodeError> {
        let space = self.space();
        let (from, to) = (convert::id(space, &req.from)?, convert::id(space, &req.to)?);
        if req.buckets > digest::MAX_BUCKETS {
            return Err(NodeError::InvalidArgument(format!(
                "digest of {} buckets: at most {} per request",
                req.buckets,
                digest::MAX_BUCKETS
            )));
        }
        self.replicated.asked(from, to, Instant::now());
        let d = self.local_digests(from, to, req.buckets).await?;
        Ok(pb::DigestReply {
            entries: d.entries(),
            digests: d.into_sums(),
        })
    }

    /// This node's digests of `(from, to]`, computed on a blocking thread (a whole range is
    /// read and hashed).
    pub(crate) async fn local_digests(
        &self,
        from: Id,
        to: Id,
        buckets: u32,
    ) -> Result<Digests, NodeError> {
        let b = Buckets::new(self.space(), from, to, buckets);
        blocking(&self.local.store, move |s| {
            let mut d = Digests::new(b);
            let mut after = None;
            loop {
                let page = s.scan(from, to, after, PAGE)?;
                let Some(last) = page.last() else { break };
                after = Some((last.id, last.key.clone()));
                for e in &page {
                    d.add(e.id, entry_digest(e));
                }
            }
            Ok(d)
        })
        .await
    }

    /// One anti-entropy round: our range `(predecessor, me]` against each of our first r − 1
    /// successors, both ways. Skipped while the node does not serve, is alone, or does not
    /// know its predecessor (it cannot tell its range).
    pub(crate) async fn anti_entropy_once(&self) {
        if !self.life.is_serving() {
            return;
        }
        let (range, replicas) = {
            let st = self.state();
            let Some(pred) = st.predecessor() else { return };
            if st.is_alone() {
                return;
            }
            let set = dht_core::own_replicas(&st, self.cfg.replication_factor as usize);
            let replicas: Vec<Peer> = set.into_iter().filter(|p| p.id != self.me.id).collect();
            ((pred.id, self.me.id), replicas)
        };
        if replicas.is_empty() {
            return;
        }
        let started = Instant::now();
        let mut round = Synced::default();
        let mut failed = 0;
        for p in &replicas {
            match self.sync_range(p, range, Direction::Both).await {
                Ok(s) => round.add(s),
                Err(e) => {
                    failed += 1;
                    debug!(peer = %p.addr, error = %e, "anti-entropy with a replica failed");
                }
            }
        }
        self.metrics.anti_entropy.record(&round);
        debug!(
            replicas = replicas.len(),
            failed,
            differing = round.differing,
            pulled = round.pulled,
            pushed = round.pushed,
            digest_bytes = round.digest_bytes,
            ms = started.elapsed().as_millis() as u64,
            "anti-entropy round"
        );
    }

    /// Compares `(from, to]` with `peer` by digests and moves the entries of the buckets that
    /// differ: with [`Direction::Pull`] only into this store, with [`Direction::Both`] also
    /// ours to the peer (except the versions it just sent us). When nothing differs only the
    /// digests travel. A peer that does not know `Digest` (an older version) is treated as
    /// differing everywhere, so a join through it still pulls the whole range.
    pub(crate) async fn sync_range(
        &self,
        peer: &Peer,
        (from, to): (Id, Id),
        dir: Direction,
    ) -> Result<Synced, NodeError> {
        let started = Instant::now();
        let mut done = Synced::default();
        let req = pb::DigestRequest {
            from: convert::id_bytes(from),
            to: convert::id_bytes(to),
            buckets: DIGEST_BUCKETS,
        };
        done.digest_bytes = req.encoded_len() as u64;
        let (theirs, ours) = tokio::join!(
            self.peers.digest(peer, req, self.digest_deadline()),
            self.local_digests(from, to, DIGEST_BUCKETS)
        );
        let ours = ours?;
        let buckets = *ours.buckets();
        let differing: Vec<usize> = match theirs {
            Ok(reply) => {
                done.digest_bytes += reply.encoded_len() as u64;
                ours.differing(&reply.digests).ok_or_else(|| {
                    NodeError::Internal(format!(
                        "{} answered {} digests for {} buckets",
                        peer.addr,
                        reply.digests.len(),
                        buckets.count()
                    ))
                })?
            }
            Err(NodeError::Peer { status, .. }) if status.code() == tonic::Code::Unimplemented => {
                (0..buckets.count()).collect()
            }
            Err(e) => return Err(e),
        };
        done.bytes = done.digest_bytes;
        done.differing = differing.len() as u64;
        for (first, last) in digest::runs(&differing, RUN_BUCKETS) {
            let (a, b) = buckets.span(first, last);
            let keep_seen = dir == Direction::Both;
            let (n, bytes, seen) = self.pull_run(peer, &buckets, (a, b), keep_seen).await?;
            done.pulled += n;
            done.bytes += bytes;
            if keep_seen {
                let (n, bytes) = self.push_run(peer, (a, b), &seen).await?;
                done.pushed += n;
                done.bytes += bytes;
            }
            self.pace(done.bytes, started).await;
        }
        Ok(done)
    }

    /// Pulls `peer`'s entries of `(a, b]` into our store, keeping only ids inside the synced
    /// range. With `keep_seen`, returns each pulled version's digest too: the peer has
    /// those, so the push that follows skips them. Returns (entries, bytes, seen).
    async fn pull_run(
        &self,
        peer: &Peer,
        range: &Buckets,
        (a, b): (Id, Id),
        keep_seen: bool,
    ) -> Result<(u64, u64, HashSet<u64>), NodeError> {
        let mut seen = HashSet::new();
        let space = self.space();
        let mut stream = self.peers.fetch_range(peer, a, b).await?;
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut batch = Vec::with_capacity(PAGE);
        while let Some(e) = stream
            .message()
            .await
            .map_err(crate::pool::peer_err(&peer.addr))?
        {
            bytes += e.encoded_len() as u64;
            let e = convert::from_entry(space, e);
            if !range.contains(e.id) {
                continue;
            }
            if keep_seen {
                seen.insert(entry_digest(&e));
            }
            batch.push(e);
            n += self.store_page(&mut batch, false).await?;
        }
        n += self.store_page(&mut batch, true).await?;
        Ok((n, bytes, seen))
    }

    /// Pushes our entries of `(a, b]` to `peer`, except the versions in `seen`, a page (one
    /// `PushEntries` call) at a time. Returns (entries, bytes).
    async fn push_run(
        &self,
        peer: &Peer,
        (a, b): (Id, Id),
        seen: &HashSet<u64>,
    ) -> Result<(u64, u64), NodeError> {
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut after = None;
        loop {
            let page = self.local.scan(a, b, after.clone(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.id, last.key.clone()));
            let wire: Vec<pb::Entry> = page
                .iter()
                .filter(|e| !seen.contains(&entry_digest(e)))
                .map(convert::entry)
                .collect();
            if wire.is_empty() {
                continue;
            }
            let sent = wire.len() as u64;
            bytes += wire.iter().map(|e| e.encoded_len() as u64).sum::<u64>();
            let stored = self
                .peers
                .push_entries(peer, futures::stream::iter(wire))
                .await?;
            if stored != sent {
                debug!(peer = %peer.addr, stored, sent, "anti-entropy push partly acknowledged");
            }
            n += sent;
        }
        Ok((n, bytes))
    }

    /// Sleeps as long as moving `bytes` since `started` takes at `anti_entropy_rate_kib`.
    async fn pace(&self, bytes: u64, started: Instant) {
        let rate = self.cfg.anti_entropy_rate_kib;
        if rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(bytes as f64 / (rate as f64 * 1024.0));
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }

    /// How long a peer may take to digest a range: it reads the whole range, far longer than
    /// one ordinary call for a large store.
    fn digest_deadline(&self) -> Duration {
        (self.cfg.timeout * 20).max(Duration::from_secs(10))
    }
}

/// An entry's contribution to its bucket digest.
pub(crate) fn entry_digest(e: &Entry) -> u64 {
    let v = e.record.version;
    digest::entry_digest(&e.key, v.hlc, v.node, e.record.value.is_none())
}
