//! Moving key ranges between nodes (docs/protocol.md, "Key ownership and movement"): a node
//! whose range shrank pushes the part it gave up, and a leaving node pushes everything. (A
//! joining node pulls its range through the anti-entropy exchange, `antientropy`, and copies
//! a node no longer replicates go to their replica sets through `replica_gc`.) Ranges travel
//! a page at a time, never whole in memory; whoever hands entries away drops each page's
//! exact versions once the receiver acknowledged that page.

use std::sync::Arc;

use dht_core::{Id, Peer};
use dht_proto::v1 as pb;
use dht_store::{Entry, Store};
use futures::{Stream, StreamExt};
use tonic::Streaming;
use tracing::{info, warn};

use crate::convert;
use crate::local::blocking;
use crate::node::Node;
use crate::pool::peer_err;
use crate::telemetry::Handoff;
use crate::NodeError;

/// Entries per scan page and per stored batch.
const PAGE: usize = 512;

/// The entries of `(from, to]` in `store`, read a page at a time as the stream is polled.
/// A storage error ends the stream with that error.
pub(crate) fn range_stream(
    store: Arc<dyn Store>,
    from: Id,
    to: Id,
) -> impl Stream<Item = Result<Entry, NodeError>> + Send + 'static {
    let start: (Option<(Id, Vec<u8>)>, bool) = (None, false);
    futures::stream::unfold(start, move |(after, done)| {
        let store = store.clone();
        async move {
            if done {
                return None;
            }
            let a = after.clone();
            match blocking(&store, move |s| s.scan(from, to, a, PAGE)).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = page.last().map(|e| (e.id, e.key.clone()));
                    Some((Ok(page), (next, false)))
                }
                Err(e) => Some((Err(e), (after, true))),
            }
        }
    })
    .flat_map(|page| match page {
        Ok(entries) => futures::stream::iter(entries.into_iter().map(Ok)).left_stream(),
        Err(e) => futures::stream::once(async move { Err(e) }).right_stream(),
    })
}

impl Node {
    /// Stores a stream of entries sent by `sender` (a push to us), a page at a time; returns
    /// how many it stored.
    pub(crate) async fn store_stream(
        &self,
        stream: &mut Streaming<pb::Entry>,
        sender: &str,
    ) -> Result<u64, NodeError> {
        let space = self.space();
        let mut batch = Vec::with_capacity(PAGE);
        let mut total = 0u64;
        while let Some(e) = stream.message().await.map_err(peer_err(sender))? {
            batch.push(convert::from_entry(space, e));
            total += self.store_page(&mut batch, false).await?;
        }
        total += self.store_page(&mut batch, true).await?;
        Ok(total)
    }

    /// Stores `batch` once it holds a page (with `last`, whatever it holds), so a stream of
    /// incoming entries costs one commit per page; returns how many entries it took.
    pub(crate) async fn store_page(
        &self,
        batch: &mut Vec<Entry>,
        last: bool,
    ) -> Result<u64, NodeError> {
        if batch.is_empty() || (!last && batch.len() < PAGE) {
            return Ok(0);
        }
        let n = batch.len() as u64;
        self.local
            .store_incoming(std::mem::take(batch), &self.metrics.versions_refused)
            .await?;
        Ok(n)
    }

    /// Pushes the entries of `(from, to]` to `to_peer` one page (one `PushEntries` call) at
    /// a time and returns how many it acknowledged. With `drop_copies`, each page's exact
    /// versions are removed here once the receiver acknowledged that page: a copy left
    /// behind after a handoff could travel back one day (a leave, a GC) after its owner
    /// purged a newer tombstone, and a deleted key would reappear. A newer write that arrived
    /// meanwhile stays. Only one page is ever in memory.
    pub(crate) async fn push_range(
        &self,
        to_peer: &Peer,
        from: Id,
        to: Id,
        drop_copies: bool,
    ) -> Result<u64, NodeError> {
        let mut after = None;
        let mut total = 0u64;
        loop {
            let page = self.local.scan(from, to, after.clone(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.id, last.key.clone()));
            let n = page.len() as u64;
            let wire: Vec<pb::Entry> = page.iter().map(convert::entry).collect();
            let stored = self
                .peers
                .push_entries(to_peer, futures::stream::iter(wire))
                .await?;
            if stored != n {
                return Err(NodeError::Internal(format!(
                    "{} acknowledged {stored} of {n} entries",
                    to_peer.addr
                )));
            }
            if drop_copies {
                let versions = page
                    .into_iter()
                    .map(|e| (e.id, e.key, e.record.version))
                    .collect();
                self.local.remove(versions).await?;
            }
            total += n;
        }
        Ok(total)
    }

    /// A leave: every key to the first successor that takes them all, page by page, each
    /// page dropped here once acknowledged. Returns who took them. A successor that fails
    /// half-way keeps what it acknowledged; the next one gets the rest.
    pub(crate) async fn hand_over_everything(&self, successors: &[Peer]) -> Option<Peer> {
        let me = self.me.id;
        for s in successors {
            match self.push_range(s, me, me, true).await {
                Ok(n) => {
                    self.metrics.handoff(Handoff::LeaveOut, n);
                    info!(successor = %s.addr, keys = n, "handed keys over");
                    return Some(s.clone());
                }
                Err(e) => {
                    warn!(successor = %s.addr, error = %e, "handoff failed; trying the next successor")
                }
            }
        }
        None
    }

    /// After an adoption narrowed our range, pushes the part given up, `(from, n]`, to the
    /// new predecessor `n` in the background. With a replication factor of 2 or more this
    /// node stays a replica of that part (it is `n`'s first successor), so it keeps its
    /// copies; with 1 it drops each page once `n` acknowledged it.
    pub(crate) fn spawn_range_handoff(self: &Arc<Self>, n: &Peer, from: Id) {
        let node = self.clone();
        let n = n.clone();
        let drop_copies = self.cfg.replication_factor <= 1;
        let span = tracing::info_span!("task", name = "range-handoff", node = %self.me.addr);
        self.tasks.spawn("range-handoff", span, async move {
            let count = node.push_range(&n, from, n.id, drop_copies).await?;
            if count > 0 {
                info!(to = %n.addr, entries = count, dropped = drop_copies, "handed a range to the new predecessor");
            }
            Ok(())
        });
    }
}
