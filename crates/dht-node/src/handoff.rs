//! Joining and leaving: the moments when key ranges change hands (CHORD.md, Join and Leave).
//!
//! A joining node receives its range from its successor *before* it serves it: it pulls the
//! range, tells the successor it is its predecessor (the successor stops serving the range
//! under its ownership lock, so no write is in flight), pulls again to pick up writes that
//! landed meanwhile, and only then starts serving. A leaving node stops serving, pushes every
//! key to its successor and waits for the acknowledgement, then relinks its neighbours.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dht_core::{Id, Peer, Rectify};
use dht_proto::v1 as pb;
use tracing::{info, warn, Instrument};

use crate::convert;
use crate::node::{blocking, Node};
use crate::pool::peer_err;
use crate::telemetry::Handoff;
use crate::NodeError;

/// Entries per scan page and per stream frame batch.
pub(crate) const PAGE: usize = 512;

impl Node {
    /// Joins the ring that any of `bootstrap` belongs to.
    pub async fn join(&self, bootstrap: &[String]) -> Result<(), NodeError> {
        self.serving.store(false, Ordering::SeqCst);
        self.publish_health().await;
        let result = self.join_inner(bootstrap).await;
        self.serving.store(true, Ordering::SeqCst);
        self.publish_health().await;
        result
    }

    /// Retries a join that failed for a transient reason (a timeout under load, the ring
    /// still listing our previous incarnation) for a few seconds; gives up at once on a
    /// refusal (hash size, id collision), and after three rounds when no bootstrap answers.
    async fn join_inner(&self, bootstrap: &[String]) -> Result<(), NodeError> {
        let mut last_err = None;
        for attempt in 0..10 {
            match self.join_once(bootstrap).await {
                Ok(()) => return Ok(()),
                Err(e @ (NodeError::HashSizeMismatch { .. } | NodeError::Precondition(_))) => {
                    return Err(e)
                }
                Err(e @ NodeError::Bootstrap(_)) if attempt >= 2 => return Err(e),
                Err(e) => {
                    warn!(attempt, error = %e, "join attempt failed; retrying");
                    last_err = Some(e);
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(last_err.unwrap_or_else(|| NodeError::Bootstrap(bootstrap.join(", "))))
    }

    async fn join_once(&self, bootstrap: &[String]) -> Result<(), NodeError> {
        let mut last_err = None;
        let mut found = None;
        for addr in bootstrap {
            match self.find_successor_via(addr, self.me.id).await {
                Ok(s) => {
                    found = Some(s);
                    break;
                }
                Err(e @ NodeError::HashSizeMismatch { .. }) => return Err(e),
                Err(NodeError::Peer { status, .. })
                    if status.code() == tonic::Code::FailedPrecondition =>
                {
                    return Err(NodeError::Precondition(status.message().to_string()))
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some(mut succ) = found else {
            let why = last_err.map(|e| e.to_string()).unwrap_or_default();
            return Err(NodeError::Bootstrap(format!(
                "{}: {why}",
                bootstrap.join(", ")
            )));
        };
        if succ.id == self.me.id {
            if succ.addr != self.me.addr {
                return Err(NodeError::Precondition(format!(
                    "id collision: {} has the same id {} as this node; use a larger hash_size",
                    succ.addr, self.me.id
                )));
            }
            // The ring still lists a previous incarnation of this node (a quick restart). Our
            // own FindStep answers "not serving" while we join alone, so the lookup of the
            // next id goes past us to the first member after us. Never fall back to being
            // alone here: the rest of the ring exists and would be overruled.
            let next = self.space().add(self.me.id, Id::from_u64(1));
            succ = self.find_successor_via(&bootstrap[0], next).await?;
            if succ.id == self.me.id {
                return Err(NodeError::Internal(
                    "the ring still lists this node's previous incarnation".into(),
                ));
            }
        }
        let result = self.adopt_successor(&succ).await;
        if result.is_err() {
            // A join cut short must not leave half-set pointers behind: the next stabilize
            // would make the successor hand us a range we never received.
            self.state().reset();
        }
        result
    }

    async fn adopt_successor(&self, succ: &Peer) -> Result<(), NodeError> {
        let (s_pred, s_list) = self.get_state(succ).await?;
        let restarted = s_pred.as_ref().is_some_and(|p| p.id == self.me.id);
        let range = {
            let mut st = self.state();
            st.join(succ, &s_list);
            st.join_range(succ, s_pred.as_ref())
        };
        // If the successor's predecessor is already us (our previous incarnation), our range
        // never moved: our keys are in our own store.
        let pulled = if restarted {
            0
        } else {
            self.pull_range(succ, range).await?
        };
        self.notify(succ).await?;
        let again = if restarted {
            0
        } else {
            self.pull_range(succ, range).await?
        };
        self.metrics
            .handoff(Handoff::JoinIn, (pulled + again) as u64);
        info!(successor = %succ.addr, keys = pulled + again, "joined");
        Ok(())
    }

    /// After a (re)join, entries stored here that another node now owns (a node that was
    /// down while the ring changed) are sent to their owners, versions intact, so the newest
    /// write wins there. Waits for a predecessor first: until then this node cannot tell what
    /// it owns.
    pub(crate) fn spawn_rehome(self: &Arc<Self>) {
        let node = self.clone();
        let token = self.tasks_stop.clone();
        let span = tracing::info_span!("task", name = "rehome", node = %self.me.addr);
        self.tasks.spawn(
            async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    r = node.rehome_foreign() => match r {
                        Ok(0) => {}
                        Ok(n) => info!(entries = n, "sent entries to their current owners"),
                        Err(e) => warn!(error = %e, "rehoming stored entries failed"),
                    }
                }
            }
            .instrument(span),
        );
    }

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
            let page = self.store_scan(me, me, after.clone(), PAGE).await?;
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
            self.store_remove(done).await?;
        }
        Ok(moved)
    }

    async fn find_successor_via(&self, addr: &str, id: Id) -> Result<Peer, NodeError> {
        let mut c = self.pool.client_at(addr)?;
        let r = c
            .find_successor(pb::FindSuccessorRequest {
                key_id: convert::id_bytes(id),
                hash_size: self.space().bits(),
            })
            .await
            .map_err(peer_err(addr))?
            .into_inner();
        let owner = r
            .owner
            .ok_or_else(|| NodeError::Internal(format!("{addr} returned no owner")))?;
        convert::peer(self.space(), &owner)
    }

    pub(crate) async fn get_state(&self, p: &Peer) -> Result<(Option<Peer>, Vec<Peer>), NodeError> {
        let mut c = self.pool.client(p)?;
        let r = c
            .get_state(pb::GetStateRequest {})
            .await
            .map_err(peer_err(&p.addr))?
            .into_inner();
        if r.hash_size != self.space().bits() {
            return Err(NodeError::HashSizeMismatch {
                ours: self.space().bits(),
                theirs: r.hash_size,
            });
        }
        let space = self.space();
        Ok((
            convert::opt_peer(space, r.predecessor.as_ref())?,
            convert::peers(space, &r.successors)?,
        ))
    }

    pub(crate) async fn notify(&self, p: &Peer) -> Result<(), NodeError> {
        let mut c = self.pool.client(p)?;
        c.notify(pb::NotifyRequest {
            node: Some(convert::node_ref(&self.me)),
            hash_size: self.space().bits(),
        })
        .await
        .map_err(peer_err(&p.addr))?;
        Ok(())
    }

    /// Pulls the entries of `(from, to]` from `p` into the local store.
    async fn pull_range(&self, p: &Peer, (from, to): (Id, Id)) -> Result<usize, NodeError> {
        let mut c = self.pool.bulk_client(p)?;
        let mut stream = c
            .fetch_range(pb::FetchRangeRequest {
                from: convert::id_bytes(from),
                to: convert::id_bytes(to),
            })
            .await
            .map_err(peer_err(&p.addr))?
            .into_inner();
        let space = self.space();
        let mut batch = Vec::with_capacity(PAGE);
        let mut total = 0;
        while let Some(e) = stream.message().await.map_err(peer_err(&p.addr))? {
            let e = convert::from_entry(space, e);
            self.hlc.observe(e.record.version);
            batch.push(e);
            if batch.len() == PAGE {
                total += batch.len();
                self.store_apply(std::mem::take(&mut batch)).await?;
            }
        }
        total += batch.len();
        if !batch.is_empty() {
            self.store_apply(batch).await?;
        }
        Ok(total)
    }

    /// Rectify with the ownership lock held when the predecessor changes (our range shrinks).
    ///
    /// When the new predecessor narrows our range, the part it now owns is pushed to it in the
    /// background and our copies dropped once it acknowledged them. Usually the new node
    /// already pulled that range while joining; this covers every other way a range can move
    /// (a join whose lookup was stale, a node that believed itself alone for a moment).
    pub(crate) async fn rectify_from(self: &Arc<Self>, n: &Peer) {
        let moved = if self.state().rectify_would_adopt(n) {
            let _g = self.ownership.write().await;
            let mut st = self.state();
            st.rectify(n);
            st.take_given_up()
        } else {
            let decision = self.state().rectify(n);
            match decision {
                // The predecessor changed between the check and now.
                Rectify::Adopted => self.state().take_given_up(),
                Rectify::CheckPredecessor(p) => {
                    let alive = self.ping(&p).await.is_ok();
                    let _g = self.ownership.write().await;
                    let mut st = self.state();
                    st.rectify_after_check(n, &p, alive);
                    st.take_given_up()
                }
                Rectify::Kept => None,
            }
        };
        let Some((from, _)) = moved else {
            return;
        };
        let node = self.clone();
        let n = n.clone();
        let span = tracing::info_span!("task", name = "range-handoff", node = %self.me.addr);
        self.tasks.spawn(
            async move {
                match node.push_range(&n, from, n.id).await {
                    Ok(pushed) if pushed.is_empty() => {}
                    Ok(pushed) => {
                        let count = pushed.len();
                        if let Err(e) = node.store_remove(pushed).await {
                            warn!(error = %e, "could not drop handed-off copies");
                        }
                        info!(to = %n.addr, entries = count, "handed a range to the new predecessor");
                    }
                    Err(e) => warn!(to = %n.addr, error = %e, "range handoff failed; copies stay here"),
                }
            }
            .instrument(span),
        );
    }

    pub(crate) async fn ping(&self, p: &Peer) -> Result<(), NodeError> {
        let mut c = self.pool.client(p)?;
        c.ping(pb::PingRequest {
            hash_size: self.space().bits(),
            ..Default::default()
        })
        .await
        .map_err(peer_err(&p.addr))?;
        Ok(())
    }

    /// Leaves the ring gracefully. Idempotent; a leave cut short counts as a failure.
    pub async fn leave(&self) -> Result<(), NodeError> {
        if self.left.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.tasks_stop.cancel();
        // NOT_SERVING now (`left` is set), before waiting for writes in flight to finish.
        self.publish_health().await;
        // Wait for pushes to us that are under way (their entries must be in our scan); later
        // ones are refused now that `left` is set.
        drop(self.leave_gate.write().await);
        {
            let _g = self.ownership.write().await;
            self.serving.store(false, Ordering::SeqCst);
        }
        self.settle_successor().await;
        let plan = self.state().leave_plan();
        let mut handed_to = None;
        let me = self.me.id;
        for s in &plan.successors {
            match self.push_range(s, me, me).await {
                Ok(pushed) => {
                    let n = pushed.len() as u64;
                    self.metrics.handoff(Handoff::LeaveOut, n);
                    info!(successor = %s.addr, keys = n, "handed keys over");
                    // Our copies must not travel back later (see `push_range`).
                    if let Err(e) = self.store_remove(pushed).await {
                        warn!(error = %e, "could not drop handed-off copies");
                    }
                    handed_to = Some(s.clone());
                    break;
                }
                Err(e) => {
                    warn!(successor = %s.addr, error = %e, "handoff failed; trying the next successor")
                }
            }
        }
        if !plan.successors.is_empty() && handed_to.is_none() {
            return Err(NodeError::Internal("no successor accepted the keys".into()));
        }
        let notice = pb::LeaveNoticeRequest {
            leaving: Some(convert::node_ref(&self.me)),
            successors: convert::node_refs(&plan.successors),
            predecessor: plan.predecessor.as_ref().map(convert::node_ref),
        };
        let mut told: Vec<Peer> = handed_to.into_iter().collect();
        told.extend(plan.predecessor.clone());
        told.dedup_by_key(|p| p.id);
        for p in told {
            if let Ok(mut c) = self.pool.client(&p) {
                if let Err(e) = c.leave_notice(notice.clone()).await {
                    warn!(peer = %p.addr, error = %e, "leave notice failed");
                }
            }
        }
        self.state().reset();
        Ok(())
    }

    /// Before a leave hands its keys over, make sure our successor knows us as its
    /// predecessor: a node that joined between us and our successor since our last stabilize
    /// would otherwise own our range while our keys went to the old successor.
    async fn settle_successor(&self) {
        for _ in 0..20 {
            self.stabilize_once().await;
            let Some(s) = self.state().successors().first().cloned() else {
                return;
            };
            if let Ok((Some(p), _)) = self.get_state(&s).await {
                if p.id == self.me.id {
                    return;
                }
            }
            tokio::time::sleep(self.cfg.stabilize_interval.min(Duration::from_millis(100))).await;
        }
        warn!("successor does not list this node as its predecessor; handing keys over anyway");
    }

    /// Streams the entries of `(from, to]` to `to_peer`, page by page (never the whole range
    /// in memory), and returns what it acknowledged: (id, key, version) of every entry, so the
    /// caller can drop exactly those copies. A copy left behind after a handoff could travel
    /// back one day (a leave, a rehome) after its owner purged a newer tombstone, and a
    /// deleted key would reappear.
    pub(crate) async fn push_range(
        &self,
        to_peer: &Peer,
        from: Id,
        to: Id,
    ) -> Result<Vec<(Id, Vec<u8>, dht_store::Version)>, NodeError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::Entry>(PAGE);
        let store = self.store.clone();
        let feeder = tokio::spawn(async move {
            let mut after = None;
            let mut pushed = Vec::new();
            loop {
                let a = after.clone();
                let page = blocking(&store, move |s| s.scan(from, to, a, PAGE)).await?;
                let Some(last) = page.last() else { break };
                after = Some((last.id, last.key.clone()));
                for e in &page {
                    if tx.send(convert::entry(e)).await.is_err() {
                        return Err(NodeError::Internal("the receiving stream closed".into()));
                    }
                    pushed.push((e.id, e.key.clone(), e.record.version));
                }
            }
            Ok::<_, NodeError>(pushed)
        });
        let mut c = self.pool.bulk_client(to_peer)?;
        let reply = c
            .push_entries(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(peer_err(&to_peer.addr));
        let pushed = feeder
            .await
            .map_err(|e| NodeError::Internal(format!("handoff task: {e}")))??;
        let stored = reply?.into_inner().stored;
        if stored != pushed.len() as u64 {
            return Err(NodeError::Internal(format!(
                "{} acknowledged {stored} of {} entries",
                to_peer.addr,
                pushed.len()
            )));
        }
        Ok(pushed)
    }
}
