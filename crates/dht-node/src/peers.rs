//! Every call this node makes to another node, in one place: the ring's questions (FindStep,
//! FindSuccessor, GetState, Notify, Ping and the cold-start probe, LeaveNotice), the one
//! function that sends `Apply`, and the key-transfer streams. Callers get typed results and
//! [`NodeError`]s that say whether the peer answered (see `NodeError::peer_unreachable`).

use dht_core::{Heard, Id, IdSpace, Peer, Step};
use dht_proto::v1 as pb;
use futures::Stream;
use tonic::Streaming;

use crate::coalesce::Coalescer;
use crate::convert;
use crate::pool::{peer_err, PeerPool};
use crate::tasks::Tasks;
use crate::validate::same_hash_size;
use crate::NodeError;

pub(crate) struct Peers {
    me: Peer,
    space: IdSpace,
    pool: std::sync::Arc<PeerPool>,
    /// Per-peer batching of forwarded operations.
    coalescer: Coalescer,
}

/// Sends one `Apply` batch to `peer` and checks that it answered one result per operation.
/// The only place an `Apply` leaves this node (the coalescer's senders call it too).
pub(crate) async fn send_apply(
    pool: &PeerPool,
    peer: &Peer,
    ops: Vec<pb::Op>,
) -> Result<Vec<pb::OpResult>, NodeError> {
    let n = ops.len();
    let mut c = pool.client(peer)?;
    let results = c
        .apply(pb::ApplyRequest { ops })
        .await
        .map_err(peer_err(&peer.addr))?
        .into_inner()
        .results;
    if results.len() != n {
        return Err(NodeError::Internal(format!(
            "{} answered {} results for {n} operations",
            peer.addr,
            results.len()
        )));
    }
    Ok(results)
}

impl Peers {
    pub(crate) fn new(
        me: Peer,
        space: IdSpace,
        pool: PeerPool,
        tasks: Tasks,
        batch_size: metrics::Histogram,
    ) -> Peers {
        let pool = std::sync::Arc::new(pool);
        Peers {
            coalescer: Coalescer::new(pool.clone(), tasks, batch_size),
            me,
            space,
            pool,
        }
    }

    /// Forgets a peer presumed dead: its channels and its batching queue, so a restarted
    /// process at the same address gets fresh ones.
    pub(crate) fn forget(&self, addr: &str) {
        self.pool.forget(addr);
        self.coalescer.forget(addr);
    }

    pub(crate) async fn find_step(&self, p: &Peer, key: Id) -> Result<Step, NodeError> {
        let mut c = self.pool.client(p)?;
        let reply = c
            .find_step(pb::FindStepRequest {
                key_id: convert::id_bytes(key),
            })
            .await
            .map_err(peer_err(&p.addr))?
            .into_inner();
        convert::from_step(self.space, &reply)
    }

    /// A whole lookup run by the node at `addr` (a joining node asks its bootstrap).
    pub(crate) async fn find_successor_via(&self, addr: &str, id: Id) -> Result<Peer, NodeError> {
        let mut c = self.pool.client_at(addr)?;
        let r = c
            .find_successor(pb::FindSuccessorRequest {
                key_id: convert::id_bytes(id),
                hash_size: self.space.bits(),
            })
            .await
            .map_err(peer_err(addr))?
            .into_inner();
        let owner = r
            .owner
            .ok_or_else(|| NodeError::Internal(format!("{addr} returned no owner")))?;
        convert::peer(self.space, &owner)
    }

    pub(crate) async fn get_state(&self, p: &Peer) -> Result<(Option<Peer>, Vec<Peer>), NodeError> {
        let mut c = self.pool.client(p)?;
        let r = c
            .get_state(pb::GetStateRequest {})
            .await
            .map_err(peer_err(&p.addr))?
            .into_inner();
        same_hash_size(self.space, r.hash_size)?;
        Ok((
            convert::opt_peer(self.space, r.predecessor.as_ref())?,
            convert::peers(self.space, &r.successors)?,
        ))
    }

    /// "I may be your predecessor" (rectify).
    pub(crate) async fn notify(&self, p: &Peer) -> Result<(), NodeError> {
        let mut c = self.pool.client(p)?;
        c.notify(pb::NotifyRequest {
            node: Some(convert::node_ref(&self.me)),
            hash_size: self.space.bits(),
        })
        .await
        .map_err(peer_err(&p.addr))?;
        Ok(())
    }

    /// A liveness check; answers the callee's incarnation (0 from nodes that predate it).
    pub(crate) async fn ping(&self, p: &Peer) -> Result<u64, NodeError> {
        let mut c = self.pool.client(p)?;
        let r = c
            .ping(pb::PingRequest {
                hash_size: self.space.bits(),
                ..Default::default()
            })
            .await
            .map_err(peer_err(&p.addr))?;
        Ok(r.into_inner().incarnation)
    }

    /// Tells `p` about `contact`, a member of another ring (docs/protocol.md, "Ring
    /// unification").
    pub(crate) async fn unify(&self, p: &Peer, contact: &Peer) -> Result<(), NodeError> {
        let mut c = self.pool.client(p)?;
        c.unify(pb::UnifyRequest {
            hash_size: self.space.bits(),
            contact: Some(convert::node_ref(contact)),
        })
        .await
        .map_err(peer_err(&p.addr))?;
        Ok(())
    }

    /// A cold-start probe: tells `p` we are waiting, whether we may start a ring, whether
    /// our list names `p`, and the lowest waiting node we heard from; returns how `p` stands
    /// (docs/protocol.md, "Cold start").
    pub(crate) async fn probe(
        &self,
        p: &Peer,
        lowest: Option<&Peer>,
        listed: bool,
        eligible: bool,
    ) -> Result<Heard, NodeError> {
        let mut c = self.pool.client(p)?;
        // hash_size 0: the callee skips its own check, and we compare its answer ourselves.
        let r = c
            .ping(pb::PingRequest {
                hash_size: 0,
                from: Some(convert::node_ref(&self.me)),
                standing: pb::Standing::Waiting as i32,
                lowest: lowest.map(convert::node_ref),
                listed,
                eligible,
            })
            .await
            .map_err(peer_err(&p.addr))?
            .into_inner();
        same_hash_size(self.space, r.hash_size)?;
        let peer = match &r.node {
            Some(n) => convert::peer(self.space, n)?,
            None => p.clone(),
        };
        Ok(Heard {
            peer,
            standing: convert::standing(r.standing),
            lowest: convert::opt_peer(self.space, r.lowest.as_ref())?,
            eligible: r.eligible,
        })
    }

    pub(crate) async fn leave_notice(
        &self,
        p: &Peer,
        notice: pb::LeaveNoticeRequest,
    ) -> Result<(), NodeError> {
        let mut c = self.pool.client(p)?;
        c.leave_notice(notice).await.map_err(peer_err(&p.addr))?;
        Ok(())
    }

    /// Runs a batch of operations on `owner` at once (one storage commit there).
    pub(crate) async fn apply_batch(
        &self,
        owner: &Peer,
        ops: Vec<pb::Op>,
    ) -> Result<Vec<pb::OpResult>, NodeError> {
        send_apply(&self.pool, owner, ops).await
    }

    /// Runs one operation on `owner` as part of the next coalesced batch to it.
    pub(crate) async fn apply_one(
        &self,
        owner: &Peer,
        op: pb::Op,
    ) -> Result<pb::OpResult, NodeError> {
        self.coalescer.apply(owner, op).await
    }

    /// The entries of `(from, to]` stored at `p`, as a stream (a joining node pulls its range).
    pub(crate) async fn fetch_range(
        &self,
        p: &Peer,
        from: Id,
        to: Id,
    ) -> Result<Streaming<pb::Entry>, NodeError> {
        let mut c = self.pool.bulk_client(p)?;
        Ok(c.fetch_range(pb::FetchRangeRequest {
            from: convert::id_bytes(from),
            to: convert::id_bytes(to),
        })
        .await
        .map_err(peer_err(&p.addr))?
        .into_inner())
    }

    /// Streams `entries` to `p`, which stores them (newest version wins); returns how many it
    /// acknowledged.
    pub(crate) async fn push_entries<S>(&self, p: &Peer, entries: S) -> Result<u64, NodeError>
    where
        S: Stream<Item = pb::Entry> + Send + 'static,
    {
        let mut c = self.pool.bulk_client(p)?;
        Ok(c.push_entries(entries)
            .await
            .map_err(peer_err(&p.addr))?
            .into_inner()
            .stored)
    }

    /// The bucket digests of a range at `p` (anti-entropy). On the bulk channel with its own
    /// `deadline`: the callee reads the whole range, which for a large store takes longer
    /// than the per-call timeout, but a round must still not wait for ever.
    pub(crate) async fn digest(
        &self,
        p: &Peer,
        req: pb::DigestRequest,
        deadline: std::time::Duration,
    ) -> Result<pb::DigestReply, NodeError> {
        let mut c = self.pool.bulk_client(p)?;
        match tokio::time::timeout(deadline, c.digest(req)).await {
            Ok(r) => Ok(r.map_err(peer_err(&p.addr))?.into_inner()),
            Err(_) => Err(NodeError::Peer {
                addr: p.addr.to_string(),
                status: tonic::Status::deadline_exceeded(format!(
                    "no digest within {} s",
                    deadline.as_secs_f64()
                )),
            }),
        }
    }
}
