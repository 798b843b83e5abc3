//! Moving key ranges between nodes (docs/protocol.md, "Key ownership and movement"): a
//! joining node pulls its range, a node whose range shrank pushes the part it gave up, a
//! leaving node pushes everything, and a node restarted with its data sends what it no longer
//! owns to the owners. Ranges travel as streams read page by page from the store, never whole
//! in memory; whoever hands entries away drops exactly the versions the receiver acknowledged.

use std::sync::{Arc, Mutex};

use dht_core::{Id, Peer};
use dht_proto::v1 as pb;
use dht_store::{Entry, Store, Version};
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

/// What a push handed over: (id, key, version) of every entry sent.
type Sent = Vec<(Id, Vec<u8>, Version)>;

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
    /// Pulls the entries of `(from, to]` from `p` into the local store.
    pub(crate) async fn pull_range(
        &self,
        p: &Peer,
        (from, to): (Id, Id),
    ) -> Result<usize, NodeError> {
        let mut stream = self.peers.fetch_range(p, from, to).await?;
        Ok(self.store_stream(&mut stream, &p.addr).await? as usize)
    }

    /// Stores a stream of entries sent by `sender` (a range we pull, or a push to us), a
    /// page at a time; returns how many it stored.
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
            if batch.len() == PAGE {
                total += batch.len() as u64;
                self.local
                    .store_incoming(std::mem::take(&mut batch), &self.metrics.versions_refused)
                    .await?;
            }
        }
        total += batch.len() as u64;
        if !batch.is_empty() {
            self.local
                .store_incoming(batch, &self.metrics.versions_refused)
                .await?;
        }
        Ok(total)
    }

    /// Streams the entries of `(from, to]` to `to_peer` and returns what it acknowledged, so
    /// the caller can drop exactly those copies. A copy left behind after a handoff could
    /// travel back one day (a leave, a rehome) after its owner purged a newer tombstone, and
    /// a deleted key would reappear.
    pub(crate) async fn push_range(
        &self,
        to_peer: &Peer,
        from: Id,
        to: Id,
    ) -> Result<Sent, NodeError> {
        let sent: Arc<Mutex<Sent>> = Arc::default();
        let failed: Arc<Mutex<Option<NodeError>>> = Arc::default();
        let (s, f) = (sent.clone(), failed.clone());
        let entries = range_stream(self.local.store.clone(), from, to)
            .take_while(move |r| {
                let ok = match r {
                    Ok(e) => {
                        let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                        s.push((e.id, e.key.clone(), e.record.version));
                        true
                    }
                    Err(e) => {
                        *f.lock().unwrap_or_else(|e| e.into_inner()) = Some(NodeError::Internal(
                            format!("reading the range to push: {e}"),
                        ));
                        false
                    }
                };
                std::future::ready(ok)
            })
            .filter_map(|r| std::future::ready(r.ok().map(|e| convert::entry(&e))));
        let stored = self.peers.push_entries(to_peer, entries).await?;
        if let Some(e) = failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(e);
        }
        let sent = std::mem::take(&mut *sent.lock().unwrap_or_else(|e| e.into_inner()));
        if stored != sent.len() as u64 {
            return Err(NodeError::Internal(format!(
                "{} acknowledged {stored} of {} entries",
                to_peer.addr,
                sent.len()
            )));
        }
        Ok(sent)
    }

    /// A leave: every key to the first successor that takes them all. Returns who did.
    pub(crate) async fn hand_over_everything(&self, successors: &[Peer]) -> Option<Peer> {
        let me = self.me.id;
        for s in successors {
            match self.push_range(s, me, me).await {
                Ok(pushed) => {
                    let n = pushed.len() as u64;
                    self.metrics.handoff(Handoff::LeaveOut, n);
                    info!(successor = %s.addr, keys = n, "handed keys over");
                    // Our copies must not travel back later (see `push_range`).
                    if let Err(e) = self.local.remove(pushed).await {
                        warn!(error = %e, "could not drop handed-off copies");
                    }
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
    /// new predecessor `n` in the background and drops our copies once it acknowledged them.
    pub(crate) fn spawn_range_handoff(self: &Arc<Self>, n: &Peer, from: Id) {
        let node = self.clone();
        let n = n.clone();
        let span = tracing::info_span!("task", name = "range-handoff", node = %self.me.addr);
        self.tasks.spawn("range-handoff", span, async move {
            let pushed = node.push_range(&n, from, n.id).await?;
            if pushed.is_empty() {
                return Ok(());
            }
            let count = pushed.len();
            node.local.remove(pushed).await?;
            info!(to = %n.addr, entries = count, "handed a range to the new predecessor");
            Ok(())
        });
    }

    /// After a (re)join, entries stored here that another node now owns (a node that was
    /// down while the ring changed) are sent to their owners, versions intact, so the newest
    /// write wins there.
    pub(crate) fn spawn_rehome(self: &Arc<Self>) {
        let node = self.clone();
        let token = self.tasks.token().clone();
        let span = tracing::info_span!("task", name = "rehome", node = %self.me.addr);
        self.tasks.spawn("rehome", span, async move {
            tokio::select! {
                _ = token.cancelled() => {}
                r = node.rehome_foreign() => match r? {
                    0 => {}
                    n => info!(entries = n, "sent entries to their current owners"),
                }
            }
            Ok(())
        });
    }

    /// Waits for a predecessor first: until then this node cannot tell what it owns.
    async fn rehome_foreign(&self) -> Result<usize, NodeError> {
        let wait = self.cfg.stabilize_interval;
        for _ in 0..600 {
            {
                let st = self.state();
                if st.predecessor().is_some() || st.is_alone() {
                    break;
                }
            }
            tokio::time::sleep(wait).await;
        }
        let me = self.me.id;
        let mut after = None;
        let mut moved = 0;
        loop {
            let page = self.local.scan(me, me, after.clone(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.id, last.key.clone()));
            // Foreign entries of this page go out as one batch per owner (`route_batch`).
            let foreign: Vec<_> = {
                let st = self.state();
                page.into_iter().filter(|e| !st.owns(e.id)).collect()
            };
            if foreign.is_empty() {
                continue;
            }
            let ops = foreign
                .iter()
                .map(|e| {
                    let op = pb::Op {
                        op: Some(pb::op::Op::Put(convert::entry(e))),
                        ..Default::default()
                    };
                    (e.key.clone(), op)
                })
                .collect();
            let done = match self.route_batch(ops).await {
                Ok(n) if n as usize == foreign.len() => {
                    moved += foreign.len();
                    self.metrics.handoff(Handoff::RehomeOut, n);
                    // The owners now have these versions or newer ones; our copies must not
                    // travel back later.
                    foreign
                        .into_iter()
                        .map(|e| (e.id, e.key, e.record.version))
                        .collect()
                }
                Ok(_) => Vec::new(),
                Err(err) => {
                    warn!(error = %err, "could not send entries to their owners; they stay here");
                    Vec::new()
                }
            };
            self.local.remove(done).await?;
        }
        Ok(moved)
    }
}
