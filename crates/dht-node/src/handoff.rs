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
use crate::node::Node;
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

    async fn join_inner(&self, bootstrap: &[String]) -> Result<(), NodeError> {
        let mut last_err = None;
        let mut found = None;
        'outer: for _attempt in 0..3 {
            for addr in bootstrap {
                match self.find_successor_via(addr, self.me.id).await {
                    Ok(s) => {
                        found = Some(s);
                        break 'outer;
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
            tokio::time::sleep(Duration::from_millis(300)).await;
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
            // The ring still lists a previous incarnation of this node: join before the
            // first member after our id instead.
            let next = self.space().add(self.me.id, Id::from_u64(1));
            succ = self.find_successor_via(&bootstrap[0], next).await?;
            if succ.id == self.me.id {
                self.state().reset();
                return Ok(());
            }
        }
        let (s_pred, s_list) = self.get_state(&succ).await?;
        let range = {
            let mut st = self.state();
            st.join(&succ, &s_list);
            st.join_range(&succ, s_pred.as_ref())
        };
        let pulled = self.pull_range(&succ, range).await?;
        self.notify(&succ).await?;
        let again = self.pull_range(&succ, range).await?;
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
            for e in page {
                if self.state().owns(e.id) {
                    continue;
                }
                let op = pb::Op {
                    op: Some(pb::op::Op::Put(convert::entry(&e))),
                };
                match self.route(&e.key, op).await {
                    Ok(_) => {
                        moved += 1;
                        self.metrics.handoff(Handoff::RehomeOut, 1);
                    }
                    Err(err) => {
                        warn!(error = %err, "could not send an entry to its owner; it stays here")
                    }
                }
            }
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
    pub(crate) async fn rectify_from(&self, n: &Peer) {
        let decision = {
            let _g = self.ownership.write().await;
            self.state().rectify(n)
        };
        if let Rectify::CheckPredecessor(p) = decision {
            let alive = self.ping(&p).await.is_ok();
            let _g = self.ownership.write().await;
            self.state().rectify_after_check(n, &p, alive);
        }
    }

    pub(crate) async fn ping(&self, p: &Peer) -> Result<(), NodeError> {
        let mut c = self.pool.client(p)?;
        c.ping(pb::PingRequest {
            hash_size: self.space().bits(),
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
        {
            let _g = self.ownership.write().await;
            self.serving.store(false, Ordering::SeqCst);
        }
        let plan = self.state().leave_plan();
        let mut handed_to = None;
        for s in &plan.successors {
            match self.push_all(s).await {
                Ok(n) => {
                    self.metrics.handoff(Handoff::LeaveOut, n);
                    info!(successor = %s.addr, keys = n, "handed keys over");
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

    /// Streams every stored entry to `s`; returns how many it acknowledged.
    async fn push_all(&self, s: &Peer) -> Result<u64, NodeError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::Entry>(PAGE);
        let me = self.me.id;
        let mut after = None;
        let mut pages = Vec::new();
        // Scan first, then stream: the store is ours alone now that we stopped serving.
        loop {
            let page = self.store_scan(me, me, after.clone(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.id, last.key.clone()));
            pages.push(page);
        }
        let feeder = tokio::spawn(async move {
            for e in pages.iter().flatten() {
                if tx.send(convert::entry(e)).await.is_err() {
                    break;
                }
            }
        });
        let mut c = self.pool.bulk_client(s)?;
        let r = c
            .push_entries(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(peer_err(&s.addr))?;
        let _ = feeder.await;
        Ok(r.into_inner().stored)
    }
}
